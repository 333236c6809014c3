// Needs no downloaded model: loads the generated ONNX fixtures (test/fixtures/onnx-writer.ts) with onnxruntime-node.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import ort from "onnxruntime-node";
import { encodeVarint } from "../fixtures/protobuf-writer.js";
import {
  buildOnnx, dynamicImageOnnx, linearClassifierForward, linearClassifierOnnx, linearClassifierWeights,
  SLOW_DEFAULTS, slowOnnx, typesZooOnnx,
} from "../fixtures/onnx-writer.js";

// One thread each: the machine has 2 cores, and the slow model's timing assumes a single intra-op thread.
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1,
};

async function open(t: TestContext, model: Buffer): Promise<ort.InferenceSession> {
  const session = await ort.InferenceSession.create(model, SESSION_OPTIONS);
  t.after(() => session.release());
  return session;
}

/** name → [type, shape] for each tensor, so metadata compares in one assertion. */
function describe(metadata: readonly ort.InferenceSession.ValueMetadata[]): Record<string, [string, (number | string)[]]> {
  const out: Record<string, [string, (number | string)[]]> = {};
  for (const m of metadata) {
    assert.ok(m.isTensor, `${m.name} should be a tensor`);
    out[m.name] = [m.type, [...m.shape]];
  }
  return out;
}

function output(result: ort.InferenceSession.ReturnType, name: string): ort.Tensor {
  const value = result[name];
  assert.ok(value, `missing output ${name}`);
  return value;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] ?? NaN, e = expected[i] ?? NaN;
    assert.ok(Math.abs(a - e) <= tolerance, `index ${i}: ${a} vs ${e}`);
  }
}

test("protobuf varints match the wire format, negatives as 10-byte two's complement", () => {
  assert.deepEqual([...encodeVarint(1)], [0x01]);
  assert.deepEqual([...encodeVarint(300)], [0xac, 0x02]);
  assert.deepEqual([...encodeVarint(-1)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
});

test("every attribute kind decodes as written (negative ints, floats, strings, tensors)", async (t) => {
  const session = await open(t, buildOnnx({
    nodes: [
      // axis -2 differs from Softmax's default (-1), so a dropped attribute would show.
      { opType: "Softmax", inputs: ["x"], outputs: ["sm"], attributes: { axis: { i: -2 } } },
      { opType: "LeakyRelu", inputs: ["x"], outputs: ["lr"], attributes: { alpha: { f: 0.25 } } },
      { opType: "Constant", inputs: [], outputs: ["cf"], attributes: { value_floats: { floats: [1.5, -2] } } },
      { opType: "Constant", inputs: [], outputs: ["ci"], attributes: { value_ints: { ints: [-3, 4] } } },
      { opType: "Constant", inputs: [], outputs: ["cs"], attributes: { value_string: { s: "héllo" } } },
      {
        opType: "Constant", inputs: [], outputs: ["ct"],
        attributes: { value: { t: { name: "c", type: "int32", dims: [2], data: Int32Array.from([5, -6]) } } },
      },
    ],
    inputs: [{ name: "x", type: "float32", shape: [2, 2] }],
    outputs: [
      { name: "sm", type: "float32", shape: [2, 2] }, { name: "lr", type: "float32", shape: [2, 2] },
      { name: "cf", type: "float32", shape: [2] }, { name: "ci", type: "int64", shape: [2] },
      { name: "cs", type: "string", shape: [] }, { name: "ct", type: "int32", shape: [2] },
    ],
  }));
  const r = await session.run({ x: new ort.Tensor("float32", Float32Array.from([0, 0, -4, 2]), [2, 2]) });
  // Softmax down each column of [[0, 0], [-4, 2]].
  const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
  assertClose(output(r, "sm").data as Float32Array, [sigmoid(4), sigmoid(-2), sigmoid(-4), sigmoid(2)], 1e-6);
  assert.deepEqual([...(output(r, "lr").data as Float32Array)], [0, 0, -1, 2]);
  assert.deepEqual([...(output(r, "cf").data as Float32Array)], [1.5, -2]);
  assert.deepEqual([...(output(r, "ci").data as BigInt64Array)], [-3n, 4n]);
  assert.deepEqual(output(r, "cs").data, ["héllo"]);
  assert.deepEqual([...(output(r, "ct").data as Int32Array)], [5, -6]);
});

test("linear classifier: dynamic batch, softmax(xW + b) matches JS", async (t) => {
  const session = await open(t, linearClassifierOnnx());
  assert.deepEqual(describe(session.inputMetadata), { x: ["float32", ["batch", 4]] });
  assert.deepEqual(describe(session.outputMetadata), { probs: ["float32", ["batch", 3]] });

  const weights = linearClassifierWeights();
  for (const batch of [1, 3]) {
    const x = Float32Array.from({ length: batch * 4 }, (_, i) => Math.sin(i + 1) * 2);
    const probs = output(await session.run({ x: new ort.Tensor("float32", x, [batch, 4]) }), "probs");
    assert.deepEqual(probs.dims, [batch, 3]);
    assertClose(probs.data as Float32Array, linearClassifierForward(weights, x), 1e-5);
  }

  const wide = await open(t, linearClassifierOnnx({ inputs: 6, classes: 5, seed: 9 }));
  assert.deepEqual(describe(wide.outputMetadata), { probs: ["float32", ["batch", 5]] });
  const x = Float32Array.from({ length: 12 }, (_, i) => i / 6 - 1);
  const probs = output(await wide.run({ x: new ort.Tensor("float32", x, [2, 6]) }), "probs");
  const expected = linearClassifierForward(linearClassifierWeights({ inputs: 6, classes: 5, seed: 9 }), x);
  assertClose(probs.data as Float32Array, expected, 1e-5);
});

test("types zoo: every element type loads and passes through", async (t) => {
  const session = await open(t, typesZooOnnx());
  assert.deepEqual(describe(session.inputMetadata), {
    ids: ["int64", ["batch", "seq"]], mask: ["bool", ["batch", "seq"]], small: ["int8", [2]],
    u8: ["uint8", [2]], half: ["float16", [2]], f: ["float32", [1, 3]],
  });
  assert.deepEqual(describe(session.outputMetadata), {
    ids_out: ["int64", ["batch", "seq"]], mask_not: ["bool", ["batch", "seq"]], small_out: ["int8", [2]],
    u8_out: ["uint8", [2]], half_out: ["float16", [2]], f_relu: ["float32", [1, 3]],
  });

  const ids = BigInt64Array.from([1n, -2n, 2n ** 40n, 0n, 7n, 9n]);
  const halfBits = Uint16Array.from([0x3e00, 0xc000]); // 1.5, -2
  const result = await session.run({
    ids: new ort.Tensor("int64", ids, [2, 3]),
    mask: new ort.Tensor("bool", Uint8Array.from([1, 0, 1, 1, 0, 0]), [2, 3]),
    small: new ort.Tensor("int8", Int8Array.from([-128, 127]), [2]),
    u8: new ort.Tensor("uint8", Uint8Array.from([0, 255]), [2]),
    half: new ort.Tensor("float16", halfBits, [2]),
    f: new ort.Tensor("float32", Float32Array.from([-1, 0.5, 2]), [1, 3]),
  });

  assert.deepEqual(output(result, "ids_out").dims, [2, 3]);
  assert.deepEqual([...(output(result, "ids_out").data as BigInt64Array)], [...ids]);
  assert.deepEqual([...(output(result, "mask_not").data as Uint8Array)].map(Boolean), [false, true, false, false, true, true]);
  assert.deepEqual([...(output(result, "small_out").data as Int8Array)], [-128, 127]);
  assert.deepEqual([...(output(result, "u8_out").data as Uint8Array)], [0, 255]);
  // Uint16Array without Float16Array support, Float16Array with it: compare the bits either way.
  const half = output(result, "half_out").data as Uint16Array;
  assert.deepEqual([...new Uint16Array(half.buffer, half.byteOffset, half.length)], [...halfBits]);
  assert.deepEqual([...(output(result, "f_relu").data as Float32Array)], [0, 0.5, 2]);
});

test("slow model: a chain of MatMuls that keeps the CPU busy", async (t) => {
  const { size, iterations } = SLOW_DEFAULTS;
  const session = await open(t, slowOnnx());
  assert.deepEqual(describe(session.inputMetadata), { x: ["float32", ["batch", size]] });
  assert.deepEqual(describe(session.outputMetadata), { y: ["float32", ["batch", size]] });

  const x = new ort.Tensor("float32", Float32Array.from({ length: size * size }, (_, i) => Math.cos(i)), [size, size]);
  await session.run({ x }); // warm-up: first runs allocate
  const times: number[] = [];
  let y: ort.Tensor | undefined;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    y = output(await session.run({ x }), "y");
    times.push(performance.now() - start);
  }
  t.diagnostic(`slow model ${size}x${size}, ${iterations} MatMuls: ${times.map((ms) => ms.toFixed(1)).join(", ")} ms`);
  assert.ok(Math.min(...times) > 20, `expected > 20 ms per run, got ${times.join(", ")}`);
  // The weight scaling keeps activations finite and non-zero through the whole chain.
  const data = y?.data as Float32Array;
  assert.ok(data.every(Number.isFinite));
  assert.ok(data.some((v) => Math.abs(v) > 1e-3));
});

test("dynamic image: ReduceMean over H and W for any N, H, W", async (t) => {
  const session = await open(t, dynamicImageOnnx());
  assert.deepEqual(describe(session.inputMetadata), { image: ["float32", ["N", 3, "H", "W"]] });
  assert.deepEqual(describe(session.outputMetadata), { channel_means: ["float32", ["N", 3]] });

  for (const [n, h, w] of [[2, 4, 5], [1, 7, 3]] as const) {
    const image = Float32Array.from({ length: n * 3 * h * w }, (_, i) => (i % 11) - 3.5);
    const means = output(await session.run({ image: new ort.Tensor("float32", image, [n, 3, h, w]) }), "channel_means");
    assert.deepEqual(means.dims, [n, 3]);
    const expected = Array.from({ length: n * 3 }, (_, plane) =>
      image.subarray(plane * h * w, (plane + 1) * h * w).reduce((a, b) => a + b, 0) / (h * w));
    assertClose(means.data as Float32Array, expected, 1e-5);
  }
});
