// Needs no model: every file is built in memory by test/fixtures/onnx-writer.ts, and signatures are
// checked against what onnxruntime-node itself reports for the same bytes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import ort from "onnxruntime-node";
import { OnnxFormatError, readOnnxHeader, type OnnxHeader, type ReadOnnxOptions } from "../../src/onnx/onnx-reader.js";
import { buildGguf, buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { buildOnnx, dynamicImageOnnx, linearClassifierOnnx, slowOnnx, typesZooOnnx, writeOnnx, type OnnxModelSpec } from "../fixtures/onnx-writer.js";
import { encodeVarint, ProtoWriter } from "../fixtures/protobuf-writer.js";
import { prng } from "../fixtures/prng.js";

let dir = "";
let counter = 0;
before(async () => { dir = await mkdtemp(path.join(tmpdir(), "onnx-reader-")); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function parse(bytes: Buffer | string, opts?: ReadOnnxOptions): Promise<OnnxHeader> {
  const file = path.join(dir, `m${counter++}.onnx`);
  await writeFile(file, bytes);
  return readOnnxHeader(file, opts);
}

/** Parses, or fails with an OnnxFormatError (and nothing else); returns the reason or "ok". */
async function outcome(bytes: Buffer, opts?: ReadOnnxOptions): Promise<string> {
  try {
    await parse(bytes, opts);
    return "ok";
  } catch (err) {
    assert.ok(err instanceof OnnxFormatError, `expected OnnxFormatError, got ${String(err)}`);
    return err.reason;
  }
}

async function rejects(bytes: Buffer | string, reason: string, opts?: ReadOnnxOptions): Promise<void> {
  await assert.rejects(parse(bytes, opts), (err: unknown) => {
    assert.ok(err instanceof OnnxFormatError, `expected OnnxFormatError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

type Signature = Array<{ name: string; type: string; shape: Array<number | string> }>;

// onnxruntime reports [] both for a scalar and for "no shape"; the reader tells them apart (null).
const ours = (list: OnnxHeader["inputs"]): Signature => list.map((v) => ({ name: v.name, type: v.type, shape: v.shape ?? [] }));
const theirs = (list: readonly ort.InferenceSession.ValueMetadata[]): Signature =>
  list.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: "unknown", shape: [] }));

/** Reads `model` with both the reader and onnxruntime and checks the signatures agree. */
async function assertMatchesOrt(model: Buffer): Promise<OnnxHeader> {
  const header = await parse(model);
  const session = await ort.InferenceSession.create(model, { executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    assert.deepEqual(ours(header.inputs), theirs(session.inputMetadata));
    assert.deepEqual(ours(header.outputs), theirs(session.outputMetadata));
  } finally {
    await session.release();
  }
  return header;
}

// Hand-built models, for what the fixture writer does not express (non-tensor types, odd dims).
const W = (): ProtoWriter => new ProtoWriter();
const dimValue = (v: number): ProtoWriter => W().varint(1, v);
const dimParam = (p: string): ProtoWriter => W().string(2, p);
function tensorType(elemType: number, dims?: ProtoWriter[]): ProtoWriter {
  const t = W().varint(1, elemType);
  if (dims) t.message(2, dims.reduce((shape, d) => shape.message(1, d), W()));
  return W().message(1, t);
}
const valueInfo = (name: string, type: ProtoWriter): ProtoWriter => W().string(1, name).message(2, type);
const opset = (version = 13): ProtoWriter => W().string(1, "").varint(2, version);
function model(graph: ProtoWriter, top: (m: ProtoWriter) => ProtoWriter = (m) => m): Buffer {
  return top(W().varint(1, 7).string(2, "test").message(7, graph).message(8, opset())).finish();
}
const F32 = 1, I64 = 7, BF16 = 16;

const LINEAR_SPEC_METADATA = { fixture: "linear-classifier", classes: "3" };

test("fixture signatures match onnxruntime's, with the model's facts", async () => {
  const h = await assertMatchesOrt(linearClassifierOnnx());
  assert.deepEqual(h.inputs, [{ name: "x", type: "float32", shape: ["batch", 4] }]);
  assert.deepEqual(h.outputs, [{ name: "probs", type: "float32", shape: ["batch", 3] }]);
  assert.equal(h.irVersion, 7);
  assert.equal(h.producerName, "inferno-test-fixtures");
  assert.equal(h.producerVersion, undefined);
  assert.deepEqual(h.opsets, [{ domain: "", version: 13 }]);
  assert.deepEqual({ ...h.metadata }, LINEAR_SPEC_METADATA);
  assert.equal(h.nodeCount, 3);
  assert.equal(h.initializerCount, 2);
  assert.equal(h.fileSize, linearClassifierOnnx().length);

  const zoo = await assertMatchesOrt(typesZooOnnx());
  assert.deepEqual(zoo.inputs.map((v) => v.type), ["int64", "bool", "int8", "uint8", "float16", "float32"]);
  const image = await assertMatchesOrt(dynamicImageOnnx());
  assert.deepEqual(image.inputs, [{ name: "image", type: "float32", shape: ["N", 3, "H", "W"] }]);
  const slow = await assertMatchesOrt(slowOnnx({ iterations: 3 }));
  assert.deepEqual([slow.nodeCount, slow.initializerCount], [3, 1]);
});

test("initializers listed as graph inputs are dropped, at any IR version, as onnxruntime does", async () => {
  const spec = (irVersion: number, opsetVersion: number): OnnxModelSpec => ({
    irVersion, opset: opsetVersion,
    initializers: [{ name: "B", type: "float32", dims: [2], data: Float32Array.from([1, 2]) }],
    nodes: [{ opType: "Add", inputs: ["x", "B"], outputs: ["y"] }],
    inputs: [{ name: "x", type: "float32", shape: [2] }, { name: "B", type: "float32", shape: [2] }],
    outputs: [{ name: "y", type: "float32", shape: [2] }],
  });
  for (const [ir, version] of [[3, 8], [7, 13]] as const) {
    const h = await assertMatchesOrt(buildOnnx(spec(ir, version)));
    assert.deepEqual(h.inputs.map((v) => v.name), ["x"]);
  }
});

test("shapes: none, scalar, dims with neither value nor param, oneof order, non-tensor types", async () => {
  const identity = (): ProtoWriter => W().message(1, W().string(1, "a").string(2, "b").string(4, "Identity"));
  const io = (type: ProtoWriter): ProtoWriter => identity().message(11, valueInfo("a", type)).message(12, valueInfo("b", type));
  assert.deepEqual((await assertMatchesOrt(model(io(tensorType(F32))))).inputs[0]?.shape, null);
  assert.deepEqual((await assertMatchesOrt(model(io(tensorType(F32, []))))).inputs[0]?.shape, []);
  // onnxruntime reports "" for these two dims; the reader says "?".
  const odd = await parse(model(W().message(11, valueInfo("a", tensorType(F32, [W(), dimValue(-5), dimParam(""), dimValue(3)])))));
  assert.deepEqual(odd.inputs[0]?.shape, ["?", "?", "?", 3]);
  // dim_value and dim_param are a oneof: the one written last wins, in protobuf and here.
  const both = await assertMatchesOrt(model(identity()
    .message(11, valueInfo("a", tensorType(F32, [W().varint(1, 4).string(2, "p")])))
    .message(12, valueInfo("b", tensorType(F32, [W().string(2, "p").varint(1, 4)])))));
  assert.deepEqual([both.inputs[0]?.shape, both.outputs[0]?.shape], [["p"], [4]]);

  const seqOfFloat = W().message(4, W().message(1, tensorType(F32, [dimValue(2)])));
  const seq = await assertMatchesOrt(model(W().message(1, W().string(1, "s").string(2, "n").string(4, "SequenceLength"))
    .message(11, valueInfo("s", seqOfFloat)).message(12, valueInfo("n", tensorType(I64, [])))));
  assert.deepEqual(seq.inputs, [{ name: "s", type: "unknown", shape: null }]);
  // onnxruntime-node refuses a bfloat16 input ("Unsupported data type: 16"); the reader names it.
  const bf16 = await parse(model(io(tensorType(BF16, [dimValue(2)]))));
  assert.deepEqual(bf16.inputs, [{ name: "a", type: "bfloat16", shape: [2] }]);
});

test("unknown fields and known fields with an unexpected wire type are skipped, as protobuf does", async () => {
  const extras = (w: ProtoWriter): ProtoWriter => w.varint(90, 1).float(91, 1.5).double(92, 2.5).string(93, "x");
  const dim = (v: number): ProtoWriter => extras(dimValue(v));
  const type = (): ProtoWriter => extras(W().message(1, extras(W().varint(1, F32).message(2, extras(W().message(1, dim(2)))))));
  const graph = extras(W().message(1, W().string(1, "a").string(2, "b").string(4, "Identity")))
    .message(11, extras(valueInfo("a", type()))).message(12, extras(valueInfo("b", type())))
    .varint(11, 5); // a varint where a message belongs: an unknown field to protobuf
  const h = await assertMatchesOrt(model(graph, (m) => extras(m).varint(7, 3).message(200, W().string(1, "future"))));
  assert.deepEqual(h.inputs, [{ name: "a", type: "float32", shape: [2] }]);
});

test("doc strings and unknown fields may hold 16 MiB, not more: onnxruntime would read them all into memory", async () => {
  const field = (n: number, bytes: number) => new ProtoWriter().bytes(n, Buffer.alloc(bytes, 0x20)).finish();
  const model = linearClassifierOnnx();
  assert.equal(await outcome(Buffer.concat([model, field(6, 1 << 20), field(99, 1 << 20)])), "ok");
  await rejects(Buffer.concat([model, field(99, 17 << 20)]), "unaccounted_data");
  await rejects(Buffer.concat([model, field(6, 9 << 20), field(1234, 9 << 20)]), "unaccounted_data");
  // Inside the graph too: GraphProto.doc_string (10) and an unknown graph field.
  const graphDoc = new ProtoWriter().message(7, new ProtoWriter().bytes(10, Buffer.alloc(17 << 20, 0x20))).finish();
  await rejects(Buffer.concat([model, graphDoc]), "unaccounted_data");
  // Weights are accounted for, however large (a 20 MiB initializer).
  const big = buildOnnx({
    initializers: [{ name: "W", type: "float32", dims: [5 << 20], data: new Float32Array(5 << 20) }],
    nodes: [{ opType: "Identity", inputs: ["W"], outputs: ["y"] }],
    inputs: [],
    outputs: [{ name: "y", type: "float32", shape: [5 << 20] }],
  });
  assert.equal(await outcome(big), "ok");
});

test("a repeated graph field merges into one, as protobuf does", async () => {
  const g1 = W().message(1, W().string(1, "a").string(2, "b").string(4, "Identity"))
    .message(11, valueInfo("a", tensorType(F32, [dimValue(2)])));
  const g2 = W().message(12, valueInfo("b", tensorType(F32, [dimValue(2)])));
  const h = await assertMatchesOrt(W().varint(1, 7).message(7, g1).message(7, g2).message(8, opset()).finish());
  assert.deepEqual([h.inputs.length, h.outputs.length, h.nodeCount], [1, 1, 1]);
});

test("tensor payloads are skipped by position, not read: a 1 GiB initializer costs a few small reads", async (t) => {
  const payload = 2 ** 30;
  const tensorHead = W().packedVarints(1, [payload / 4]).varint(2, F32).string(8, "huge").finish();
  const rawTag = Buffer.concat([encodeVarint(9 * 8 + 2), encodeVarint(payload)]);
  const tensorLen = tensorHead.length + rawTag.length + payload;
  const io = W().message(11, valueInfo("x", tensorType(F32, [dimParam("n")]))).message(12, valueInfo("y", tensorType(F32, [dimParam("n")]))).finish();
  const initField = Buffer.concat([encodeVarint(5 * 8 + 2), encodeVarint(tensorLen), tensorHead, rawTag]);
  const graphLen = initField.length + payload + io.length;
  const head = Buffer.concat([W().varint(1, 7).finish(), encodeVarint(7 * 8 + 2), encodeVarint(graphLen), initField]);
  const tail = Buffer.concat([io, W().message(8, opset()).finish()]);
  const file = path.join(dir, "sparse.onnx");
  const fh = await open(file, "w");
  await fh.write(head, 0, head.length, 0);
  await fh.write(tail, 0, tail.length, head.length + payload); // leaves a hole: no disk used
  await fh.close();

  // Count what the reader asks the file for (FileHandle.prototype is shared by every handle).
  const probe = await open(file, "r");
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = proto.read;
  let bytesRead = 0;
  proto.read = function (this: unknown, ...args: unknown[]) { bytesRead += Number(args[2] ?? 0); return original.apply(this, args); };
  t.after(() => { proto.read = original; });
  const h = await readOnnxHeader(file);
  proto.read = original;
  assert.deepEqual(h.inputs, [{ name: "x", type: "float32", shape: ["n"] }]);
  assert.equal(h.initializerCount, 1);
  assert.equal(h.fileSize, head.length + payload + tail.length);
  assert.ok(bytesRead < 1024 * 1024, `read ${bytesRead} bytes`);
});

test("refuses files that are not ONNX", async () => {
  await rejects(Buffer.alloc(0), "empty_file");
  await rejects("hello world, this is not a model\n", "not_protobuf");
  await rejects(JSON.stringify({ graph: { inputs: [] } }), "not_protobuf");
  await rejects(buildGguf({ metadata: [["general.architecture", "string", "llama"]], tensors: [] }), "not_protobuf");
  await rejects(buildTinyLlamaGguf(), "not_protobuf");
  const rand = prng(7);
  for (const size of [1, 2, 3, 16, 100, 4096]) {
    assert.notEqual(await outcome(Buffer.from(Array.from({ length: size }, () => Math.floor(rand() * 256)))), "ok");
  }
});

test("refuses a model without a graph, an IR version or an opset", async () => {
  await rejects(W().varint(1, 7).string(2, "p").message(8, opset()).finish(), "no_graph");
  const graph = W().message(11, valueInfo("a", tensorType(F32)));
  await rejects(W().string(2, "p").message(7, graph).message(8, opset()).finish(), "no_ir_version");
  await rejects(W().varint(1, 7).message(7, graph).finish(), "no_opset");
});

test("every truncation is refused, except at the boundaries of trailing metadata entries", async () => {
  const spec: OnnxModelSpec = {
    graphName: "g", nodes: [{ opType: "Relu", inputs: ["x"], outputs: ["y"] }],
    initializers: [{ name: "unused", type: "float32", dims: [4], data: new Float32Array(4) }],
    inputs: [{ name: "x", type: "float32", shape: ["n", 2] }], outputs: [{ name: "y", type: "float32", shape: ["n", 2] }],
    metadata: { a: "1", bb: "22" },
  };
  const full = buildOnnx(spec);
  const keys = Object.keys(spec.metadata ?? {});
  // buildOnnx writes metadata last, so these prefixes are exactly the still-valid cut points.
  const valid = new Map(keys.map((_, k) => [buildOnnx({ ...spec, metadata: Object.fromEntries(keys.slice(0, k).map((key) => [key, spec.metadata?.[key] ?? ""])) }).length, k]));
  for (let cut = 1; cut < full.length; cut++) {
    const result = await outcome(full.subarray(0, cut));
    if (valid.has(cut)) assert.equal(result, "ok", `cut at ${cut}`);
    else assert.notEqual(result, "ok", `cut at ${cut} should be refused`);
  }
  const big = slowOnnx({ iterations: 2, size: 64 });
  for (let cut = 1; cut < big.length; cut += 97) assert.notEqual(await outcome(big.subarray(0, cut)), "ok", `cut at ${cut}`);
});

test("lengths must fit their parent message and the file", async () => {
  const top = W().varint(1, 7).finish();
  await rejects(Buffer.concat([top, encodeVarint(7 * 8 + 2), encodeVarint(2 ** 40), Buffer.from([0x08, 0x01])]), "length_out_of_bounds");
  // An input that claims more bytes than its graph holds, though the file has them.
  const input = valueInfo("a", tensorType(F32)).finish();
  const graph = Buffer.concat([encodeVarint(11 * 8 + 2), encodeVarint(input.length + 5), input]);
  const bytes = Buffer.concat([top, encodeVarint(7 * 8 + 2), encodeVarint(graph.length), graph, W().message(8, opset()).finish()]);
  await rejects(bytes, "length_out_of_bounds");
});

test("refuses groups, bad wire types, bad tags and overlong varints", async () => {
  const ok = model(W().message(11, valueInfo("a", tensorType(F32))));
  await rejects(Buffer.concat([ok, Buffer.from([0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06])]), "bad_wire_type"); // field 99 group
  await rejects(Buffer.concat([ok, Buffer.from([0x0f])]), "bad_wire_type"); // wire type 7
  await rejects(Buffer.concat([ok, Buffer.from([0x00, 0x00])]), "bad_tag");
  await rejects(Buffer.concat([ok, Buffer.from([0x08, ...Array<number>(10).fill(0xff), 0x01])]), "bad_varint");
});

test("nesting is bounded at protobuf's own limit of 100 messages", async () => {
  const nested = (levels: number): Buffer => {
    let type = tensorType(F32, [dimValue(1)]);
    for (let i = 0; i < levels; i++) type = W().message(4, W().message(1, type));
    return model(W().message(11, valueInfo("deep", type)));
  };
  // graph, value info, type, 2 per sequence, tensor, shape, dim: 47 sequences reach exactly 100.
  assert.deepEqual((await parse(nested(47))).inputs, [{ name: "deep", type: "unknown", shape: null }]);
  await rejects(nested(48), "too_deep");
  await rejects(nested(5000), "too_deep");
});

test("counts and string bytes are bounded by options", async () => {
  await rejects(typesZooOnnx(), "too_large", { maxValueInfos: 5 });
  await parse(typesZooOnnx(), { maxValueInfos: 6 });
  await rejects(linearClassifierOnnx(), "too_large", { maxStringBytes: 16 });
  await rejects(model(W().message(11, valueInfo("wide", tensorType(F32, Array.from({ length: 1025 }, () => dimValue(1)))))), "too_large");
});


test("seeded byte-flip fuzz: every mutant parses or throws OnnxFormatError", async () => {
  const rand = prng(42);
  const bases = [linearClassifierOnnx(), typesZooOnnx(), dynamicImageOnnx()];
  const seen = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const base = bases[i % bases.length] ?? Buffer.alloc(0);
    const mutant = Buffer.from(base);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) {
      const at = Math.floor(rand() * mutant.length);
      mutant[at] = rand() < 0.5 ? (mutant[at] ?? 0) ^ (1 << Math.floor(rand() * 8)) : Math.floor(rand() * 256);
    }
    const result = await outcome(mutant);
    seen.set(result, (seen.get(result) ?? 0) + 1);
  }
  assert.ok((seen.get("ok") ?? 0) > 0 && seen.size > 2, `outcomes: ${JSON.stringify([...seen])}`);
});

test("writeOnnx output reads back", async () => {
  const file = path.join(dir, "written.onnx");
  await writeOnnx(file, dynamicImageOnnx());
  assert.deepEqual((await readOnnxHeader(file)).outputs, [{ name: "channel_means", type: "float32", shape: ["N", 3] }]);
});
