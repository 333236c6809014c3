// Needs ../shared/models (mnist-8, mobilenetv2-12-int8, ch_ppocr_mobile_v2.0_cls_infer, stories260K.onnx/.gguf);
// skipped without it, required in CI.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import ort from "onnxruntime-node";
import type { OnnxModel } from "../../src/runtimes/onnx/onnx-model.js";
import { realModel } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const mnist = realModel("mnist-8.onnx");
const mobilenet = realModel("mobilenetv2-12-int8.onnx");
const ocr = realModel("ch_ppocr_mobile_v2.0_cls_infer.onnx");
const storiesOnnx = realModel("stories260K.onnx");
const storiesGguf = realModel("stories260K.gguf");

let srv: TestServer;
before(async () => {
  if (mnist.skip) return;
  srv = await startTestServer({
    models: { mnist: mnist.path, mobilenet: mobilenet.path, ocr: ocr.path, "stories-onnx": storiesOnnx.path, "stories-gguf": storiesGguf.path },
    config: { contextSize: 2048 },
  });
});
after(() => srv?.cleanup());

/** A white-on-black digit drawn as thick strokes on a 28×28 canvas, MNIST-style (digit in the centre 20×20). */
function drawDigit(segments: Array<[number, number, number, number]>): number[][][][] {
  const img = Array.from({ length: 28 }, () => new Array<number>(28).fill(0));
  for (const [x0, y0, x1, y1] of segments) {
    for (let t = 0; t <= 1; t += 0.01) {
      const cx = x0 + (x1 - x0) * t;
      const cy = y0 + (y1 - y0) * t;
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const d = Math.hypot(x - cx, y - cy);
          if (d < 2.2) img[y]![x] = Math.max(img[y]![x]!, Math.min(1, 2.2 - d));
        }
      }
    }
  }
  return [[img]];
}
const ring = (cx: number, cy: number, rx: number, ry: number): Array<[number, number, number, number]> =>
  Array.from({ length: 24 }, (_, i) => {
    const a0 = (i / 24) * 2 * Math.PI;
    const a1 = ((i + 1) / 24) * 2 * Math.PI;
    return [cx + rx * Math.cos(a0), cy + ry * Math.sin(a0), cx + rx * Math.cos(a1), cy + ry * Math.sin(a1)];
  });
const argmax = (v: number[]) => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

test("MNIST classifies drawn digits", { skip: mnist.skip }, async () => {
  const digits: Record<number, Array<[number, number, number, number]>> = {
    0: ring(14, 14, 5.5, 8),
    1: [[14, 5, 14, 23]],
    7: [[8, 6, 20, 6], [20, 6, 12, 23]],
  };
  for (const [digit, strokes] of Object.entries(digits)) {
    const r = await postJson(`${srv.url}/models/mnist/inference`, { inputs: { Input3: drawDigit(strokes) } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.outputs.Plus214_Output_0.shape, [1, 10]);
    assert.equal(argmax(r.body.outputs.Plus214_Output_0.data[0]), Number(digit), `digit ${digit}`);
  }
});

test("MNIST: a raw octet-stream body and a KServe binary request classify as the JSON path does", { skip: mnist.skip }, async () => {
  const image = drawDigit([[8, 6, 20, 6], [20, 6, 12, 23]]);
  const bytes = Buffer.from(new Float32Array(image.flat(3)).buffer);
  const json = await postJson(`${srv.url}/models/mnist/inference`, { inputs: { Input3: image } });
  const raw = await fetch(`${srv.url}/models/mnist/inference?shape=1,1,28,28`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: bytes });
  assert.equal(raw.status, 200);
  assert.deepEqual(((await raw.json()) as any).outputs, json.body.outputs);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: "Input3", shape: [1, 1, 28, 28], datatype: "FP32", parameters: { binary_data_size: bytes.length } }],
    outputs: [{ name: "Plus214_Output_0", parameters: { binary_data: true } }],
  }));
  const kserve = await fetch(`${srv.url}/v2/models/mnist/infer`, {
    method: "POST", headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(header.length) }, body: Buffer.concat([header, bytes]),
  });
  assert.equal(kserve.status, 200);
  const n = Number(kserve.headers.get("inference-header-content-length"));
  const body = Buffer.from(await kserve.arrayBuffer());
  assert.equal(JSON.parse(body.subarray(0, n).toString()).outputs[0].parameters.binary_data_size, 40);
  const logits = new Float32Array(body.buffer.slice(body.byteOffset + n, body.byteOffset + n + 40));
  assert.deepEqual([...logits], json.body.outputs.Plus214_Output_0.data[0]);
  assert.equal(argmax([...logits]), 7);
});

/** A deterministic synthetic image, normalised as MobileNet expects (NCHW, 3×224×224). */
function syntheticImage(seed: number): Float32Array {
  const out = new Float32Array(3 * 224 * 224);
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) {
        const v = (Math.sin((x * (seed + 1)) / 17 + c) * Math.cos((y * (seed + 2)) / 23) + 1) / 2;
        out[c * 224 * 224 + y * 224 + x] = (v - mean[c]!) / std[c]!;
      }
    }
  }
  return out;
}

test("MobileNetV2: a batch of two in one request, and batched across requests, equals unbatched runs", { skip: mobilenet.skip }, async () => {
  const images = [syntheticImage(1), syntheticImage(5)];
  // The ceiling: onnxruntime in this process, one image at a time.
  const session = await ort.InferenceSession.create(mobilenet.path, { intraOpNumThreads: 1, executionProviders: ["cpu"] });
  const expected: number[][] = [];
  for (const img of images) expected.push([...((await session.run({ input: new ort.Tensor("float32", img, [1, 3, 224, 224]) })).output!.data as Float32Array)]);
  await session.release();
  assert.notEqual(argmax(expected[0]!), argmax(expected[1]!), "the two synthetic images get different classes");

  const b64 = (arr: Float32Array[]) => Buffer.concat(arr.map((a) => Buffer.from(a.buffer))).toString("base64");
  const both = await postJson(`${srv.url}/models/mobilenet/inference`, {
    inputs: { input: { data_b64: b64(images), shape: [2, 3, 224, 224], dtype: "float32" } },
  });
  assert.equal(both.status, 200);
  assert.deepEqual(both.body.outputs.output.shape, [2, 1000]);
  both.body.outputs.output.data.forEach((row: number[], i: number) => {
    assert.equal(argmax(row), argmax(expected[i]!));
    assert.ok(row.every((v, j) => Math.abs(v - expected[i]![j]!) < 1e-4), `image ${i} matches the unbatched run`);
  });

  // Across requests: a queue delay makes the two single-image requests share one run.
  await postJson(`${srv.url}/models/mobilenet/load`, { max_queue_delay_us: 300_000 });
  const model = srv.app.registry.getLoaded("mobilenet") as OnnxModel;
  const runs = model.engineRuns.runs;
  const separate = await Promise.all(
    images.map((img) => postJson(`${srv.url}/models/mobilenet/inference`, { inputs: { input: { data_b64: b64([img]), shape: [1, 3, 224, 224], dtype: "float32" } } })),
  );
  assert.equal(model.engineRuns.runs - runs, 1, "one merged run");
  separate.forEach((r, i) => assert.ok(r.body.outputs.output.data[0].every((v: number, j: number) => Math.abs(v - expected[i]![j]!) < 1e-4)));
});

test("OCR direction classifier takes dynamic batch, height and width", { skip: ocr.skip }, async () => {
  for (const [n, h, w] of [[1, 48, 192], [2, 32, 100], [1, 8, 8]] as const) {
    const data = Array.from({ length: n * 3 * h * w }, (_, i) => ((i % 255) / 255) * 2 - 1);
    const r = await postJson(`${srv.url}/v2/models/ocr/infer`, { inputs: [{ name: "x", shape: [n, 3, h, w], datatype: "FP32", data }] });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 200));
    const out = r.body.outputs[0];
    assert.deepEqual(out.shape, [n, 2]);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(out.data[2 * i] + out.data[2 * i + 1] - 1) < 1e-4, "softmax rows sum to 1");
  }
});

test("stories260K.onnx logits agree with the GGUF model's next token", { skip: storiesOnnx.skip }, async () => {
  const ids = [1, 403, 407, 261, 378]; // BOS + "Once upon a time" (MODELS.md)
  const r = await postJson(`${srv.url}/models/stories-onnx/inference`, { inputs: { input_ids: [ids] }, layout: "flat" });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.outputs.logits.shape, [1, 5, 512]);
  const last = r.body.outputs.logits.data.slice(4 * 512, 5 * 512);
  // The GGUF model's greedy next token for the same ids, through the OpenAI route.
  const gguf = await postJson(`${srv.url}/v1/completions`, { model: "stories-gguf", prompt: ids, max_tokens: 1, temperature: 0 });
  assert.equal(gguf.status, 200);
  const vocab = JSON.parse(await readFile(path.join(path.dirname(storiesOnnx.path), "stories260K-tokenizer.json"), "utf8")) as { tokens: string[] };
  const onnxToken = vocab.tokens[argmax(last)]!.replace(/\u2581/g, " ");
  assert.equal(onnxToken, gguf.body.choices[0].text);
});
