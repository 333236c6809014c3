// Tensor codec: JSON, base64 and KServe v2 tensors in and out for every element type, every validation error
// with its exact details, float16 rounding, 64-bit precision, batch concat/split, and the storage onnxruntime
// takes as is. Needs no model: onnxruntime-node is only used to construct tensors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { InfernoError } from "../../src/errors/catalogue.js";
import {
  concatBatch,
  decodeBinaryTensor,
  decodeJsonTensor,
  decodeKserveTensor,
  elementTypeFromKserve,
  encodeKserveOutput,
  encodeTensor,
  float16Bits,
  float16Value,
  kserveDatatype,
  splitBatch,
} from "../../src/runtimes/onnx/tensor-codec.js";
import type { DecodedTensor, ElementType, TensorSpec } from "../../src/runtimes/onnx/tensor-codec.js";

const limits = { maxElements: 1000 };
const spec = (type: ElementType, shape: Array<number | string>, name = "x"): TensorSpec => ({ name, type, shape });

/** The InfernoError thrown by `fn`, failing the test if it throws anything else or nothing. */
function errorOf(fn: () => unknown): InfernoError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InfernoError, `expected an InfernoError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected an InfernoError, nothing was thrown");
}

/** Asserts `fn` is refused as INVALID_REQUEST on input "x" with exactly `details` (input added). */
function refused(fn: () => unknown, details: Record<string, unknown>, code = "INVALID_REQUEST"): InfernoError {
  const err = errorOf(fn);
  assert.equal(err.code, code, err.message);
  assert.equal(err.param, "inputs.x");
  assert.deepEqual(err.details, { input: "x", ...details });
  return err;
}

const base64 = (t: DecodedTensor): string => {
  const bytes = t.data as Uint8Array;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
};

// A 2×2 (or 2×3) sample per type, using values each type holds exactly, extremes included.
const SAMPLES: Array<{ type: ElementType; value: unknown[][]; storage: unknown }> = [
  { type: "float16", value: [[1, -2, 0.0999755859375], [65504, 2 ** -24, -0]], storage: Uint16Array },
  { type: "float32", value: [[1.5, -2, 0.25], [1024, -0.125, 3.4028234663852886e38]], storage: Float32Array },
  { type: "float64", value: [[0.1, 1e300], [-5e-324, -7]], storage: Float64Array },
  { type: "int8", value: [[-128, 127], [0, -1]], storage: Int8Array },
  { type: "int16", value: [[-32768, 32767], [0, -1]], storage: Int16Array },
  { type: "int32", value: [[-2147483648, 2147483647], [0, -1]], storage: Int32Array },
  { type: "int64", value: [["-9223372036854775808", "9223372036854775807"], [9007199254740991, -9007199254740991]], storage: BigInt64Array },
  { type: "uint8", value: [[0, 255], [1, 2]], storage: Uint8Array },
  { type: "uint16", value: [[0, 65535], [1, 2]], storage: Uint16Array },
  { type: "uint32", value: [[0, 4294967295], [1, 2]], storage: Uint32Array },
  { type: "uint64", value: [["18446744073709551615", 0], [9007199254740991, "9007199254740993"]], storage: BigUint64Array },
  { type: "bool", value: [[true, false], [false, true]], storage: Uint8Array },
  { type: "string", value: [["a", ""], ["ü €", "x"]], storage: Array },
];

describe("round trips", () => {
  for (const { type, value, storage } of SAMPLES) {
    const dims = [value.length, value[0]!.length];
    it(`${type}: JSON nested and flat`, () => {
      const t = decodeJsonTensor(spec(type, ["batch", dims[1]!]), value, limits);
      assert.deepEqual(t.dims, dims);
      assert.equal(t.type, type);
      assert.equal(t.data.constructor, storage);
      assert.deepEqual(encodeTensor(t, "nested"), { shape: dims, dtype: type, data: value });
      assert.deepEqual(encodeTensor(t, "flat"), { shape: dims, dtype: type, data: value.flat() });
    });
    if (type !== "string") {
      it(`${type}: base64 bytes, by its own name and its KServe name`, () => {
        const t = decodeJsonTensor(spec(type, [-1, -1]), value, limits);
        for (const dtype of [type, kserveDatatype(type)]) {
          const b = decodeBinaryTensor(spec(type, [-1, -1]), { data_b64: base64(t), shape: dims, dtype }, limits);
          assert.deepEqual(b, t);
        }
      });
    }
    it(`${type}: KServe flat and nested`, () => {
      const s = spec(type, [-1, dims[1]!]);
      const datatype = kserveDatatype(type);
      assert.equal(elementTypeFromKserve(datatype), type);
      const flat = decodeKserveTensor(s, { name: "x", shape: dims, datatype, data: value.flat() }, limits);
      const nested = decodeKserveTensor(s, { name: "x", shape: dims, datatype, data: value }, limits);
      assert.deepEqual(nested, flat);
      assert.deepEqual(encodeKserveOutput("y", flat), { name: "y", shape: dims, datatype, data: value.flat() });
    });
  }

  it("binary data is little-endian", () => {
    const f = decodeBinaryTensor(spec("float32", [1]), { data_b64: Buffer.from([0, 0, 0x80, 0x3f]).toString("base64"), shape: [1], dtype: "FP32" }, limits);
    assert.deepEqual([...f.data], [1]);
    const i = decodeBinaryTensor(spec("int64", [1]), { data_b64: Buffer.from([2, 1, 0, 0, 0, 0, 0, 0]).toString("base64"), shape: [1], dtype: "int64" }, limits);
    assert.deepEqual([...i.data], [258n]);
  });

  it("rank 0: a bare value in, a bare value out (a one-element array when flat)", () => {
    const t = decodeJsonTensor(spec("float32", []), 3.5, limits);
    assert.deepEqual(t.dims, []);
    assert.deepEqual(encodeTensor(t, "nested").data, 3.5);
    assert.deepEqual(encodeTensor(t, "flat").data, [3.5]);
    const k = decodeKserveTensor(spec("float32", []), { shape: [], datatype: "FP32", data: [3.5] }, limits);
    assert.deepEqual(k, t);
  });

  it("empty tensors: axes past an empty array take the spec's fixed size, or 0", () => {
    const a = decodeJsonTensor(spec("float32", ["batch", 3]), [], limits);
    assert.deepEqual(a.dims, [0, 3]);
    assert.deepEqual(encodeTensor(a, "nested").data, []);
    const b = decodeJsonTensor(spec("int32", [2, "n"]), [[], []], limits);
    assert.deepEqual(b.dims, [2, 0]);
    assert.deepEqual(encodeTensor(b, "nested").data, [[], []]);
  });

  it("non-finite floats travel as strings both ways", () => {
    for (const type of ["float16", "float32", "float64"] as const) {
      const t = decodeJsonTensor(spec(type, [3]), ["NaN", "Infinity", "-Infinity"], limits);
      assert.deepEqual(encodeTensor(t, "flat").data, ["NaN", "Infinity", "-Infinity"]);
    }
  });

  it("a spec shape of [] (unknown to onnxruntime) takes any rank", () => {
    assert.deepEqual(decodeJsonTensor(spec("int32", []), [[[1]]], limits).dims, [1, 1, 1]);
  });
});

describe("64-bit integers", () => {
  it("2^53 + 1 as a string keeps its precision, and comes back as a string", () => {
    const t = decodeJsonTensor(spec("int64", [2]), ["9007199254740993", "-9007199254740993"], limits);
    assert.deepEqual([...t.data], [9007199254740993n, -9007199254740993n]);
    assert.deepEqual(encodeTensor(t, "flat").data, ["9007199254740993", "-9007199254740993"]);
  });

  it("safe values come back as numbers, even when sent as strings", () => {
    const t = decodeJsonTensor(spec("int64", [2]), ["42", "-9007199254740991"], limits);
    assert.deepEqual(encodeTensor(t, "flat").data, [42, -9007199254740991]);
  });

  it("an unsafe JSON number is refused: it lost precision when it was parsed", () => {
    refused(() => decodeJsonTensor(spec("int64", [1]), [2 ** 53], limits), {
      path: [0],
      expected: "integer in [-9223372036854775808, 9223372036854775807], as a decimal string beyond ±9007199254740991",
      got: 9007199254740992,
    });
  });
});

describe("float16", () => {
  it("converts known values", () => {
    const known: Array<[number, number]> = [
      [1, 0x3c00], [65504, 0x7bff], [-2, 0xc000], [0.1, 0x2e66], [1e-8, 0x0000], [0, 0x0000], [-0, 0x8000],
      [2 ** -24, 0x0001], [2 ** -14, 0x0400], [65519, 0x7bff], [Infinity, 0x7c00], [-Infinity, 0xfc00], [NaN, 0x7e00],
    ];
    for (const [x, bits] of known) assert.equal(float16Bits(x), bits, `float16Bits(${x})`);
  });

  it("rounds to nearest, ties to even, once from the float64", () => {
    assert.equal(float16Bits(2049), 0x6800); // halfway between 2048 and 2050: the even one, 2048
    assert.equal(float16Bits(2051), 0x6802); // halfway between 2050 and 2052: the even one, 2052
    assert.equal(float16Bits(2 ** -25), 0x0000); // half the smallest subnormal: to even, 0
    assert.equal(float16Bits(3 * 2 ** -25), 0x0002); // 1.5 subnormal steps: to even, 2
    assert.equal(float16Bits(2 ** -14 - 2 ** -25), 0x0400); // rounds up out of the subnormals
    // Just above the tie between 1 and 1 + 2^-10: rounding to float32 first would make it a tie, then 1.
    assert.equal(float16Bits(1 + 2 ** -11 + 2 ** -40), 0x3c01);
  });

  it("picks the nearest half for random numbers of every magnitude, the even one on a tie", () => {
    for (let i = 0; i < 20_000; i++) {
      const x = (Math.random() * 2 - 1) * 2 ** Math.floor(Math.random() * 42 - 26);
      const bits = float16Bits(x);
      const distance = (b: number) => Math.abs(x - float16Value(b));
      for (const neighbour of [bits - 1, bits + 1]) {
        if ((neighbour & 0x7fff) > 0x7bff || (neighbour & 0x8000) !== (bits & 0x8000)) continue;
        assert.ok(distance(bits) <= distance(neighbour), `${x}: 0x${bits.toString(16)} is not the nearest`);
        if (distance(bits) === distance(neighbour)) assert.equal(bits & 1, 0, `${x}: tie not to even`);
      }
    }
  });

  it("decodes every finite pattern back to the same bits", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const x = float16Value(bits);
      if (!Number.isNaN(x)) assert.equal(float16Bits(x), bits);
    }
    assert.equal(float16Value(0x7bff), 65504);
    assert.ok(Number.isNaN(float16Value(0x7e00)));
  });
});

const F32 = "number within float32 range (±3.4028234663852886e+38)";

describe("JSON validation", () => {
  it("refuses a ragged array, naming where", () => {
    const err = refused(() => decodeJsonTensor(spec("float32", [-1, 3]), [[1, 2, 3], [4, 5]], limits), {
      path: [1],
      expected: "array of length 3",
      got: "array of length 2",
    });
    assert.equal(err.message, "inputs.x[1]: expected an array of length 3, got array of length 2");
    refused(() => decodeJsonTensor(spec("float32", ["b", 2]), [[1, 2], 3], limits), { path: [1], expected: "array of length 2", got: "number" });
    refused(() => decodeJsonTensor(spec("float32", ["b", 2]), [[1, [2]]], limits), { path: [0, 1], expected: F32, got: "array" });
  });

  it("refuses the wrong rank and the wrong fixed dimension", () => {
    const err = refused(() => decodeJsonTensor(spec("float32", ["batch", 3]), [1, 2, 3], limits), { expected: 2, got: 1 });
    assert.equal(err.message, "inputs.x: expected rank 2 (shape [batch, 3]), got rank 1");
    refused(() => decodeJsonTensor(spec("float32", [-1, 3]), [[1, 2]], limits), { axis: 1, expected: 3, got: 2 });
    refused(() => decodeJsonTensor(spec("float32", [1]), 1, limits), { expected: 1, got: 0 });
  });

  it("refuses elements of the wrong kind", () => {
    refused(() => decodeJsonTensor(spec("float32", [2]), [1, "2"], limits), { path: [1], expected: F32, got: "string" });
    refused(() => decodeJsonTensor(spec("float64", [1]), [null], limits), { path: [0], expected: "number", got: "null" });
    refused(() => decodeJsonTensor(spec("int32", [2]), [1, 1.5], limits), { path: [1], expected: "integer in [-2147483648, 2147483647]", got: 1.5 });
    refused(() => decodeJsonTensor(spec("int32", [1]), [true], limits), { path: [0], expected: "integer in [-2147483648, 2147483647]", got: "boolean" });
    // bool takes true/false only: 0/1 would let a probability or a typo through silently.
    refused(() => decodeJsonTensor(spec("bool", [2]), [true, 1], limits), { path: [1], expected: "boolean", got: 1 });
    refused(() => decodeJsonTensor(spec("bool", [1]), ["true"], limits), { path: [0], expected: "boolean", got: "string" });
    refused(() => decodeJsonTensor(spec("string", [1]), [{}], limits), { path: [0], expected: "string", got: "object" });
    const err = refused(() => decodeJsonTensor(spec("int64", [1]), ["12a"], limits), {
      path: [0],
      expected: "integer in [-9223372036854775808, 9223372036854775807], as a decimal string beyond ±9007199254740991",
      got: "12a",
    });
    assert.match(err.message, /got "12a"$/);
  });

  it("refuses values out of the type's range", () => {
    const cases: Array<[ElementType, unknown, string]> = [
      ["int8", 128, "integer in [-128, 127]"],
      ["int8", -129, "integer in [-128, 127]"],
      ["uint8", -1, "integer in [0, 255]"],
      ["int16", 32768, "integer in [-32768, 32767]"],
      ["uint16", 65536, "integer in [0, 65535]"],
      ["int32", 2 ** 31, "integer in [-2147483648, 2147483647]"],
      ["uint32", 2 ** 32, "integer in [0, 4294967295]"],
      ["int64", "9223372036854775808", "integer in [-9223372036854775808, 9223372036854775807], as a decimal string beyond ±9007199254740991"],
      ["uint64", "18446744073709551616", "integer in [0, 18446744073709551615], as a decimal string beyond 9007199254740991"],
      ["uint64", "-1", "integer in [0, 18446744073709551615], as a decimal string beyond 9007199254740991"],
      ["uint64", -1, "integer in [0, 18446744073709551615], as a decimal string beyond 9007199254740991"],
      ["float32", 1e39, F32],
      ["float16", 65520, "number within float16 range (magnitude below 65520)"],
    ];
    for (const [type, value, expected] of cases) {
      refused(() => decodeJsonTensor(spec(type, [1]), [value], limits), { path: [0], expected, got: value });
    }
  });

  it("refuses too many elements as PAYLOAD_TOO_LARGE, before reading them", () => {
    const err = refused(() => decodeJsonTensor(spec("float32", [-1]), new Array(1001).fill(0), limits), { expected: "at most 1000 elements", got: 1001 }, "PAYLOAD_TOO_LARGE");
    assert.equal(err.status, 413);
    const start = performance.now();
    // A sparse array a billion long: walking it would take seconds, so the count must come from the shape alone.
    refused(() => decodeJsonTensor(spec("float32", [-1, -1]), [new Array(1e9)], limits), { expected: "at most 1000 elements", got: 1e9 }, "PAYLOAD_TOO_LARGE");
    assert.ok(performance.now() - start < 1000);
  });

  it("refuses hostile nesting at once, without recursion", () => {
    let deep: unknown = 0;
    for (let i = 0; i < 1_000_000; i++) deep = [deep];
    const start = performance.now();
    refused(() => decodeJsonTensor(spec("float32", [1, 1]), deep, limits), { expected: 2, got: "more than 8" });
    refused(() => decodeJsonTensor(spec("float32", []), deep, limits), { expected: "at most 8", got: "more than 8" });
    assert.ok(performance.now() - start < 100);
  });
});

describe("binary validation", () => {
  const f32 = spec("float32", ["batch", 3]);
  const bytes = (n: number) => Buffer.alloc(n).toString("base64");

  it("refuses a dtype other than the spec's", () => {
    refused(() => decodeBinaryTensor(f32, { data_b64: bytes(12), shape: [1, 3], dtype: "FP64" }, limits), { expected: "float32", got: "FP64" });
    refused(() => decodeBinaryTensor(f32, { data_b64: bytes(12), shape: [1, 3], dtype: "float8" }, limits), { expected: "float32", got: "float8" });
  });

  it("refuses a byte length other than product(shape) × element size", () => {
    const err = refused(() => decodeBinaryTensor(f32, { data_b64: bytes(20), shape: [2, 3], dtype: "float32" }, limits), { expected: 24, got: 20 });
    assert.equal(err.message, "inputs.x.data_b64: expected 24 bytes (6 × 4-byte float32), got 20");
  });

  it("refuses what isn't standard base64", () => {
    for (const data_b64 of ["@@@@", "AAAAA", "AA=A", "AAA=="]) {
      refused(() => decodeBinaryTensor(f32, { data_b64, shape: [1, 3], dtype: "float32" }, limits), { expected: "base64 string", got: "invalid base64" });
    }
    refused(() => decodeBinaryTensor(f32, { data_b64: 12 as unknown as string, shape: [1, 3], dtype: "float32" }, limits), { expected: "base64 string", got: "number" });
  });

  it("refuses bad shapes", () => {
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: [-1, 3], dtype: "float32" }, limits), { axis: 0, expected: "non-negative integer", got: -1 });
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: [1.5, 3], dtype: "float32" }, limits), { axis: 0, expected: "non-negative integer", got: 1.5 });
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: "1,3" as unknown as number[], dtype: "float32" }, limits), { expected: "array of dimensions", got: "string" });
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: [3], dtype: "float32" }, limits), { expected: 2, got: 1 });
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: [1, 4], dtype: "float32" }, limits), { axis: 1, expected: 3, got: 4 });
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: new Array(1e6).fill(1), dtype: "float32" }, limits), { expected: 2, got: 1e6 });
  });

  it("refuses a huge shape before looking at the data", () => {
    refused(() => decodeBinaryTensor(f32, { data_b64: "", shape: [1e12, 3], dtype: "float32" }, limits), { expected: "at most 1000 elements", got: 3e12 }, "PAYLOAD_TOO_LARGE");
  });

  it("refuses bool bytes other than 0 and 1, and string tensors", () => {
    const data_b64 = Buffer.from([0, 1, 1, 2]).toString("base64");
    const err = refused(() => decodeBinaryTensor(spec("bool", [2, 2]), { data_b64, shape: [2, 2], dtype: "BOOL" }, limits), { path: [1, 1], expected: "byte 0 or 1", got: 2 });
    assert.equal(err.message, "inputs.x[1][1] (byte 3): expected byte 0 or 1, got 2");
    refused(() => decodeBinaryTensor(spec("string", [1]), { data_b64: "", shape: [1], dtype: "string" }, limits), { expected: "JSON array of strings", got: "data_b64" });
  });
});

describe("KServe validation", () => {
  const s = spec("float32", [-1, 3]);

  it("refuses a datatype other than the spec's, in KServe's exact names", () => {
    refused(() => decodeKserveTensor(s, { shape: [1, 3], datatype: "INT64", data: [1, 2, 3] }, limits), { expected: "FP32", got: "INT64" });
    refused(() => decodeKserveTensor(s, { shape: [1, 3], datatype: "fp32", data: [1, 2, 3] }, limits), { expected: "FP32", got: "fp32" });
    refused(() => decodeKserveTensor(s, { shape: [1, 3], datatype: "float32", data: [1, 2, 3] }, limits), { expected: "FP32", got: "float32" });
  });

  it("refuses data whose element count doesn't match the shape", () => {
    refused(() => decodeKserveTensor(s, { shape: [2, 3], datatype: "FP32", data: [1, 2, 3, 4, 5] }, limits), { expected: 6, got: 5 });
    refused(() => decodeKserveTensor(s, { shape: [2, 3], datatype: "FP32", data: "123" }, limits), { expected: "array", got: "string" });
    refused(() => decodeKserveTensor(s, { shape: [2, 3], datatype: "FP32", data: [[1, 2, 3]] }, limits), { path: [], expected: "array of length 2", got: "array of length 1" });
    refused(() => decodeKserveTensor(s, { shape: [2, 3], datatype: "FP32", data: [[1, 2, 3], [4, 5]] }, limits), { path: [1], expected: "array of length 3", got: "array of length 2" });
  });

  it("names a bad element by its index in the tensor and in the flat data", () => {
    const err = refused(() => decodeKserveTensor(s, { shape: [2, 3], datatype: "FP32", data: [1, 2, 3, 4, "5", 6] }, limits), { path: [1, 1], expected: F32, got: "string" });
    assert.equal(err.message, `inputs.x[1][1] (data[4]): expected ${F32}, got string`);
  });
});

describe("output encoding", () => {
  it("reads onnxruntime's outputs, float16 bits and bool bytes included", () => {
    const half = new ort.Tensor("float16", new Uint16Array([0x3c00, 0xc000, 0x7c00]), [3]);
    assert.deepEqual(encodeTensor(half, "flat"), { shape: [3], dtype: "float16", data: [1, -2, "Infinity"] });
    const bool = new ort.Tensor("bool", new Uint8Array([1, 0]), [1, 2]);
    assert.deepEqual(encodeKserveOutput("b", bool), { name: "b", shape: [1, 2], datatype: "BOOL", data: [true, false] });
  });

  it("refuses 4-bit types, and storage that doesn't match the shape", () => {
    assert.equal(errorOf(() => encodeTensor({ type: "int4", dims: [2], data: new Int8Array(1) }, "flat")).code, "UNSUPPORTED_OPERATION");
    assert.equal(errorOf(() => encodeTensor({ type: "float32", dims: [2, 2], data: new Float32Array(3) }, "flat")).code, "INTERNAL_ERROR");
  });
});

describe("batches", () => {
  const rows = (type: ElementType, value: unknown[][]) => decodeJsonTensor(spec(type, [-1, 2]), value, limits);

  it("concatenates along axis 0 and splits back into copies", () => {
    for (const type of ["float32", "int64", "string", "bool"] as const) {
      const sample = SAMPLES.find((s) => s.type === type)!.value.map((r) => r.slice(0, 2));
      const parts = [rows(type, sample.slice(0, 1)), rows(type, sample), rows(type, [])];
      const batch = concatBatch(parts);
      assert.deepEqual(batch.dims, [3, 2]);
      assert.deepEqual(encodeTensor(batch, "nested").data, [...sample.slice(0, 1), ...sample]);
      const back = splitBatch(batch, [1, 2, 0]);
      assert.deepEqual(back, parts);
      assert.notEqual(back[0]!.data, batch.data);
    }
  });

  it("split pieces don't share storage with the batch", () => {
    const batch = rows("float32", [[1, 2], [3, 4]]);
    const [a] = splitBatch(batch, [1, 1]);
    (batch.data as Float32Array)[0] = 9;
    assert.deepEqual([...a!.data], [1, 2]);
  });

  it("asserts compatible tensors and sizes that add up", () => {
    assert.equal(errorOf(() => concatBatch([rows("float32", [[1, 2]]), rows("int32", [[1, 2]])])).code, "INTERNAL_ERROR");
    const threeWide = decodeJsonTensor(spec("float32", [-1, 3]), [[1, 2, 3]], limits);
    assert.equal(errorOf(() => concatBatch([rows("float32", [[1, 2]]), threeWide])).code, "INTERNAL_ERROR");
    assert.equal(errorOf(() => concatBatch([])).code, "INTERNAL_ERROR");
    assert.equal(errorOf(() => splitBatch(rows("float32", [[1, 2]]), [2])).code, "INTERNAL_ERROR");
  });
});

describe("onnxruntime takes decoded tensors as they are", () => {
  for (const { type, value } of SAMPLES) {
    it(type, () => {
      const t = decodeJsonTensor(spec(type, [-1, -1]), value, limits);
      const tensor = new ort.Tensor(t.type, t.data, t.dims);
      assert.equal(tensor.type, type);
      assert.deepEqual(tensor.dims, t.dims);
      assert.equal(tensor.size, 4 + (type === "float16" || type === "float32" ? 2 : 0));
      // Same storage: onnxruntime converted nothing, so the layout is the one it expects.
      if (!(type === "float16" && "Float16Array" in globalThis)) assert.equal(tensor.data, t.data);
      assert.deepEqual(encodeTensor(tensor, "nested").data, value);
    });
  }
});
