// Needs the shared test models (see shared/models/MODELS.md): mnist-8.onnx, mobilenetv2-12-int8.onnx,
// ch_ppocr_mobile_v2.0_cls_infer.onnx, stories260K.onnx, and the two .gguf files. Skips without them.
import { test } from "node:test";
import assert from "node:assert/strict";
import ort from "onnxruntime-node";
import { OnnxFormatError, readOnnxHeader, type OnnxHeader, type OnnxValueInfo } from "../../src/onnx/onnx-reader.js";
import { realModel } from "../helpers/paths.js";

type Signature = Array<[name: string, type: string, shape: Array<number | string>]>;

const ours = (list: OnnxValueInfo[]): Signature => list.map((v) => [v.name, v.type, v.shape ?? []]);
const theirs = (list: readonly ort.InferenceSession.ValueMetadata[]): Signature =>
  list.map((m) => (m.isTensor ? [m.name, m.type, [...m.shape]] : [m.name, "unknown", []]));

/** Reads the header (timed, median of a few warm runs) and checks it against onnxruntime's metadata. */
async function readAndCompare(file: string, log: (msg: string) => void): Promise<OnnxHeader> {
  const cold = performance.now();
  let header = await readOnnxHeader(file);
  const coldMs = performance.now() - cold;
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const start = performance.now();
    header = await readOnnxHeader(file);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  log(`${file}: ${header.fileSize} bytes, first read ${coldMs.toFixed(2)} ms, median ${(times[4] ?? 0).toFixed(2)} ms`);

  const session = await ort.InferenceSession.create(file, { executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    assert.deepEqual(ours(header.inputs), theirs(session.inputMetadata));
    assert.deepEqual(ours(header.outputs), theirs(session.outputMetadata));
  } finally {
    await session.release();
  }
  return header;
}

const mnist = realModel("mnist-8.onnx");
test("mnist-8.onnx: fixed [1,1,28,28] input; its IR 3 initializers are not inputs", { skip: mnist.skip }, async (t) => {
  const h = await readAndCompare(mnist.path, (m) => t.diagnostic(m));
  assert.deepEqual(h.inputs, [{ name: "Input3", type: "float32", shape: [1, 1, 28, 28] }]);
  assert.deepEqual(h.outputs, [{ name: "Plus214_Output_0", type: "float32", shape: [1, 10] }]);
  assert.equal(h.irVersion, 3);
  assert.deepEqual(h.opsets, [{ domain: "", version: 8 }]);
  assert.ok(h.initializerCount > 0 && h.nodeCount > 0);
});

const mobilenet = realModel("mobilenetv2-12-int8.onnx");
test("mobilenetv2-12-int8.onnx: dynamic batch, 1000 logits, opset 12", { skip: mobilenet.skip }, async (t) => {
  const h = await readAndCompare(mobilenet.path, (m) => t.diagnostic(m));
  assert.deepEqual(h.inputs, [{ name: "input", type: "float32", shape: ["batch_size", 3, 224, 224] }]);
  assert.deepEqual(h.outputs, [{ name: "output", type: "float32", shape: ["batch_size", 1000] }]);
  assert.equal(h.opsets.find((o) => o.domain === "")?.version, 12);
  assert.equal(h.fileSize, 3_655_033);
  assert.ok(h.initializerCount > 100);
});

const ppocr = realModel("ch_ppocr_mobile_v2.0_cls_infer.onnx");
test("ch_ppocr_mobile_v2.0_cls_infer.onnx: batch, height and width all dynamic", { skip: ppocr.skip }, async (t) => {
  const h = await readAndCompare(ppocr.path, (m) => t.diagnostic(m));
  assert.equal(h.inputs.length, 1);
  const [input] = h.inputs;
  assert.equal(input?.name, "x");
  assert.equal(input?.type, "float32");
  assert.equal(input?.shape?.[1], 3);
  assert.deepEqual(input?.shape?.map((d) => typeof d), ["string", "number", "string", "string"]);
  assert.equal(h.outputs[0]?.name, "softmax_0.tmp_0");
  assert.equal(h.outputs[0]?.shape?.[1], 2);
});

const stories = realModel("stories260K.onnx");
test("stories260K.onnx: int64 ids in, [batch, seq, 512] logits out, llama metadata", { skip: stories.skip }, async (t) => {
  const h = await readAndCompare(stories.path, (m) => t.diagnostic(m));
  assert.deepEqual(h.inputs, [{ name: "input_ids", type: "int64", shape: ["batch", "seq"] }]);
  assert.deepEqual(h.outputs, [{ name: "logits", type: "float32", shape: ["batch", "seq", 512] }]);
  assert.equal(h.irVersion, 7);
  assert.deepEqual(h.opsets, [{ domain: "", version: 13 }]);
  assert.equal(h.metadata["architecture"], "llama");
  assert.equal(h.metadata["bos_token_id"], "1");
  assert.equal(h.metadata["eos_token_id"], "2");
});

for (const name of ["stories260K.gguf", "llama-2-tiny-random.gguf"]) {
  const gguf = realModel(name);
  test(`${name} is refused as not_protobuf`, { skip: gguf.skip }, async () => {
    await assert.rejects(readOnnxHeader(gguf.path), (err: unknown) => {
      assert.ok(err instanceof OnnxFormatError, `expected OnnxFormatError, got ${String(err)}`);
      assert.equal(err.reason, "not_protobuf");
      return true;
    });
  });
}
