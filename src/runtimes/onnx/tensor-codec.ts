// Tensors between HTTP and onnxruntime: nested JSON arrays, base64 little-endian bytes and KServe v2 tensors in,
// JSON (nested or flat) and KServe v2 outputs back. Decoding validates everything against the model's input spec,
// so onnxruntime only ever sees data of the type and shape it declared.
// Element rules (see tensor-elements.ts): bool takes only true/false (not 0/1), integers must be whole and in
// range, 64-bit integers past ±(2^53 - 1) come and go as decimal strings, non-finite floats as "NaN"/"Infinity".
import { Buffer } from "node:buffer";
import { InfernoError } from "../../errors/catalogue.js";
import { elementWriter, jsonElements, jsonKind } from "./tensor-elements.js";
import { checkCount, elementError, fillNested, invalidInput, nestedShape, parseShape, unravel } from "./tensor-shape.js";
import type { DecodeLimits } from "./tensor-shape.js";
import { elementCount, elementSize, elementTypeFromKserve, isElementType, kserveDatatype, viewData } from "./tensor-types.js";
import type { DecodedTensor, ElementType, NumericData, TensorSpec } from "./tensor-types.js";

export type { DecodeLimits } from "./tensor-shape.js";
export type { DecodedTensor, ElementType, NumericData, TensorData, TensorSpec } from "./tensor-types.js";
export {
  ELEMENT_TYPES,
  elementSize,
  elementTypeFromKserve,
  float16Bits,
  float16Value,
  isElementType,
  kserveDatatype,
  MAX_TENSOR_RANK,
} from "./tensor-types.js";
export { canBatchTogether, concatBatch, splitBatch } from "./tensor-batch.js";

/** A tensor sent as raw bytes: row-major, little-endian, `dtype` an element type or KServe name ("float32" or "FP32"). */
export interface BinaryTensorInput {
  data_b64: string;
  shape: readonly number[];
  dtype: string;
}

/** A KServe v2 request input; `data` is row-major, flat or nested to match `shape`. `name` isn't read: the caller matched it to the spec. */
export interface KserveTensorInput {
  name?: string;
  shape: readonly number[];
  datatype: string;
  data: unknown;
}

/** Anything laid out like a CPU tensor: an `ort.Tensor` output or a DecodedTensor. */
export interface TensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
}

/** A tensor as a JSON response carries it. */
export interface EncodedTensor {
  shape: number[];
  dtype: ElementType;
  /** Nested arrays (a bare value for rank 0), or the elements in row-major order. */
  data: unknown;
}

/** A KServe v2 response output. */
export interface KserveOutput {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}

/** A tensor from nested JSON arrays (a bare value for rank 0): the shape is read from the nesting. */
export function decodeJsonTensor(spec: TensorSpec, value: unknown, limits: DecodeLimits): DecodedTensor {
  const dims = nestedShape(spec, value);
  const { data, write } = elementWriter(spec.type, checkCount(spec, dims, limits));
  fillNested(spec, value, dims, write);
  return { type: spec.type, dims, data };
}

/**
 * The bytes of standard base64 text (padded or not), or undefined when it isn't exactly that. Checked by
 * re-encoding natively: a regex over a megabyte of base64 cost ~4 ms here, this well under one.
 */
function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, "base64");
  const canonical = bytes.toString("base64");
  if (text === canonical) return bytes;
  let end = canonical.length;
  while (end > 0 && canonical.charCodeAt(end - 1) === 61 /* = */) end--;
  return text.length === end && canonical.startsWith(text) ? bytes : undefined;
}

/** A tensor from base64 bytes; byte length must be exactly product(shape) × element size. Not for string tensors. */
export function decodeBinaryTensor(spec: TensorSpec, input: BinaryTensorInput, limits: DecodeLimits): DecodedTensor {
  const { dtype, data_b64: text } = input;
  const type = isElementType(dtype) ? dtype : typeof dtype === "string" ? elementTypeFromKserve(dtype) : undefined;
  if (type !== spec.type) {
    throw invalidInput(spec, `.dtype: expected "${spec.type}", got ${JSON.stringify(dtype)}`, { expected: spec.type, got: dtype });
  }
  if (type === "string") {
    throw invalidInput(spec, ": string tensors can't be sent as data_b64; send the strings as a JSON array", {
      expected: "JSON array of strings",
      got: "data_b64",
    });
  }
  const dims = parseShape(spec, input.shape);
  const count = checkCount(spec, dims, limits);
  const size = elementSize(type) ?? 1;
  const byteLength = count * size;
  const bytes = typeof text === "string" ? decodeBase64(text) : undefined;
  if (bytes === undefined) {
    const kind = typeof text === "string" ? "invalid base64" : jsonKind(text);
    throw invalidInput(spec, `.data_b64: expected standard base64, got ${kind}`, { expected: "base64 string", got: kind });
  }
  if (bytes.length !== byteLength) {
    throw invalidInput(spec, `.data_b64: expected ${byteLength} bytes (${count} × ${size}-byte ${type}), got ${bytes.length}`, {
      expected: byteLength,
      got: bytes.length,
    });
  }
  // A buffer of its own (small Buffers share a pool), so it can be moved to the session's thread.
  const buffer = new ArrayBuffer(byteLength);
  // Every platform onnxruntime-node ships for is little-endian, so the bytes go in as they came.
  bytes.copy(Buffer.from(buffer));
  const data = viewData(type, buffer, count);
  if (type === "bool") {
    const bytes = data as Uint8Array;
    const bad = bytes.findIndex((b) => b > 1);
    if (bad >= 0) {
      const problem = { expected: "byte 0 or 1", got: bytes[bad], gotText: String(bytes[bad]) };
      throw elementError(spec, problem, unravel(bad, dims), ` (byte ${bad})`);
    }
  }
  return { type, dims, data };
}

/** A tensor from a KServe v2 input: `datatype` must be the spec's, `data` flat (row-major) or nested to match `shape`. */
export function decodeKserveTensor(spec: TensorSpec, input: KserveTensorInput, limits: DecodeLimits): DecodedTensor {
  const { datatype, data: values } = input;
  if ((typeof datatype === "string" ? elementTypeFromKserve(datatype) : undefined) !== spec.type) {
    const expected = kserveDatatype(spec.type);
    throw invalidInput(spec, `.datatype: expected "${expected}", got ${JSON.stringify(datatype)}`, { expected, got: datatype });
  }
  const dims = parseShape(spec, input.shape);
  const count = checkCount(spec, dims, limits);
  if (!Array.isArray(values)) {
    throw invalidInput(spec, `.data: expected an array, got ${jsonKind(values)}`, { expected: "array", got: jsonKind(values) });
  }
  const { data, write } = elementWriter(spec.type, count);
  if (dims.length > 1 && Array.isArray(values[0])) {
    fillNested(spec, values, dims, write);
    return { type: spec.type, dims, data };
  }
  if (values.length !== count) {
    throw invalidInput(spec, `.data: expected ${count} elements for shape [${dims.join(", ")}], got ${values.length}`, {
      expected: count,
      got: values.length,
    });
  }
  for (let i = 0; i < count; i++) {
    const problem = write(values[i], i);
    if (problem) throw elementError(spec, problem, unravel(i, dims), ` (data[${i}])`);
  }
  return { type: spec.type, dims, data };
}

/** Row-major elements grouped into nested arrays of `dims`, innermost axis first; iterative. */
function nest(flat: unknown[], dims: readonly number[]): unknown {
  if (dims.length === 0) return flat[0];
  let level = flat;
  for (let axis = dims.length - 1; axis >= 1; axis--) {
    const size = dims[axis] ?? 0;
    const next = new Array<unknown>(elementCount(dims.slice(0, axis)));
    for (let g = 0; g < next.length; g++) next[g] = level.slice(g * size, (g + 1) * size);
    level = next;
  }
  return level;
}

function checkedElements(tensor: TensorLike): { type: ElementType; dims: number[]; flat: unknown[] } {
  const { type, data } = tensor;
  if (!isElementType(type)) {
    throw new InfernoError("UNSUPPORTED_OPERATION", `output tensors of type ${type} can't be returned as JSON`, { dtype: type });
  }
  const dims = [...tensor.dims];
  const count = elementCount(dims);
  const length = (data as ArrayLike<unknown> | null | undefined)?.length;
  if (length !== count) {
    throw new InfernoError("INTERNAL_ERROR", `tensor of shape [${dims.join(", ")}] holds ${String(length)} elements, not ${count}`);
  }
  return { type, dims, flat: jsonElements(type, data as ArrayLike<unknown>) };
}

/**
 * A tensor as JSON: nested arrays (a bare value for rank 0) or flat row-major. 64-bit integers are numbers while
 * within ±(2^53 - 1) and decimal strings beyond; float16 bits become numbers; bool becomes true/false; non-finite
 * floats become "NaN", "Infinity" or "-Infinity".
 */
export function encodeTensor(tensor: TensorLike, layout: "nested" | "flat"): EncodedTensor {
  const { type, dims, flat } = checkedElements(tensor);
  return { shape: dims, dtype: type, data: layout === "flat" ? flat : nest(flat, dims) };
}

/** A tensor as a KServe v2 output: flat row-major data, elements as in encodeTensor. */
export function encodeKserveOutput(name: string, tensor: TensorLike): KserveOutput {
  const { type, dims, flat } = checkedElements(tensor);
  return { name, shape: dims, datatype: kserveDatatype(type), data: flat };
}

/** A tensor's datatype and shape as a KServe v2 binary request (REST binary extension, gRPC raw contents) declares them. */
export interface RawTensorHeader {
  datatype: string;
  shape: readonly number[];
}

/**
 * A tensor from raw bytes, the KServe v2 / Triton binary layout: row-major, little-endian elements without
 * padding; BYTES elements each a 4-byte little-endian length and that many bytes (UTF-8 for strings).
 * The byte length must be exactly what the shape and datatype make. A numeric tensor views `bytes` without a
 * copy when they are aligned for the element type (the caller hands over a buffer it no longer changes).
 */
export function decodeRawTensor(spec: TensorSpec, header: RawTensorHeader, bytes: Uint8Array, limits: DecodeLimits): DecodedTensor {
  const { datatype } = header;
  if ((typeof datatype === "string" ? elementTypeFromKserve(datatype) : undefined) !== spec.type) {
    const expected = kserveDatatype(spec.type);
    throw invalidInput(spec, `.datatype: expected "${expected}", got ${JSON.stringify(datatype)}`, { expected, got: datatype });
  }
  const dims = parseShape(spec, header.shape);
  const count = checkCount(spec, dims, limits);
  if (spec.type === "string") return { type: "string", dims, data: decodeRawStrings(spec, bytes, count) };
  const size = elementSize(spec.type) ?? 1;
  const byteLength = count * size;
  if (bytes.byteLength !== byteLength) {
    throw invalidInput(spec, `: expected ${byteLength} raw bytes (${count} × ${size}-byte ${header.datatype}), got ${bytes.byteLength}`, {
      expected: byteLength,
      got: bytes.byteLength,
    });
  }
  let buffer = bytes.buffer as ArrayBuffer;
  let offset = bytes.byteOffset;
  if (offset % size !== 0 || !(buffer instanceof ArrayBuffer)) {
    buffer = new ArrayBuffer(byteLength);
    new Uint8Array(buffer).set(bytes);
    offset = 0;
  }
  const data = viewData(spec.type, buffer, count, offset);
  if (spec.type === "bool") {
    const flags = data as Uint8Array;
    const bad = flags.findIndex((b) => b > 1);
    if (bad >= 0) throw elementError(spec, { expected: "byte 0 or 1", got: flags[bad], gotText: String(flags[bad]) }, unravel(bad, dims), ` (byte ${bad})`);
  }
  return { type: spec.type, dims, data };
}

function decodeRawStrings(spec: TensorSpec, bytes: Uint8Array, count: number): string[] {
  const out = new Array<string>(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.byteLength) {
      throw invalidInput(spec, `: raw BYTES ended at element ${i} of ${count} (each element is a 4-byte length, then its bytes)`, { expected: count, got: i });
    }
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.byteLength) {
      throw invalidInput(spec, `: raw BYTES element ${i} declares ${length} bytes, only ${bytes.byteLength - at} left`, { expected: length, got: bytes.byteLength - at });
    }
    try {
      out[i] = decoder.decode(bytes.subarray(at, at + length));
    } catch {
      throw invalidInput(spec, `: raw BYTES element ${i} is not valid UTF-8`, { expected: "UTF-8", got: "invalid bytes" });
    }
    at += length;
  }
  if (at !== bytes.byteLength) {
    throw invalidInput(spec, `: ${bytes.byteLength - at} raw bytes left over after ${count} BYTES elements`, { expected: at, got: bytes.byteLength });
  }
  return out;
}

/** A tensor as raw bytes (the layout decodeRawTensor reads): typed data is viewed, not copied; strings are length-prefixed UTF-8. */
export function encodeRawTensor(tensor: TensorLike): { datatype: string; shape: number[]; bytes: Uint8Array } {
  const { type, data } = tensor;
  if (!isElementType(type)) {
    throw new InfernoError("UNSUPPORTED_OPERATION", `output tensors of type ${type} can't be returned`, { dtype: type });
  }
  const shape = [...tensor.dims];
  if (type === "string") return { datatype: "BYTES", shape, bytes: encodeRawStrings(data as ArrayLike<string>) };
  const typed = data as NumericData;
  return { datatype: kserveDatatype(type), shape, bytes: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) };
}

/** BYTES elements in the raw layout: each a 4-byte little-endian length, then the bytes. */
export function encodeRawStrings(values: ArrayLike<string | Uint8Array>): Uint8Array {
  const parts = Array.from(values, (v) => (typeof v === "string" ? Buffer.from(v, "utf8") : v));
  const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + 4 + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.writeUInt32LE(part.byteLength, at);
    out.set(part, at + 4);
    at += 4 + part.byteLength;
  }
  return out;
}
