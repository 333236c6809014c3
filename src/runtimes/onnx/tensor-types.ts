// Element types the tensor codec handles, their storage, their KServe v2 names and the float16 bit conversions.
// Storage follows onnxruntime-common's Tensor constructor: int64/uint64 in BigInt arrays, bool as 0/1 bytes,
// float16 as raw IEEE half bits in a Uint16Array (onnxruntime accepts that even where Float16Array exists).

/** The onnxruntime `Tensor.Type` names the codec handles (4-bit types are left out). */
export type ElementType =
  | "float16" | "float32" | "float64"
  | "int8" | "int16" | "int32" | "int64"
  | "uint8" | "uint16" | "uint32" | "uint64"
  | "bool" | "string";

/** A model input as onnxruntime's `session.inputMetadata` describes it; `[]` is also what it reports for an unknown shape. */
export interface TensorSpec {
  name: string;
  type: ElementType;
  /** A non-negative number is a fixed dimension; a string (symbolic) or -1 is dynamic. */
  shape: ReadonlyArray<number | string>;
}

export type NumericData =
  | Float32Array | Float64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

export type TensorData = NumericData | string[];

/** A validated tensor, laid out so that `new ort.Tensor(t.type, t.data, t.dims)` takes it as is. */
export interface DecodedTensor {
  type: ElementType;
  dims: number[];
  data: TensorData;
}

/** Deepest tensor accepted from a request, in any form; also bounds how far nested JSON is walked. */
export const MAX_TENSOR_RANK = 8;

interface NumericArrayConstructor {
  new (length: number): NumericData;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): NumericData;
  readonly BYTES_PER_ELEMENT: number;
}

const STORAGE: Record<Exclude<ElementType, "string">, NumericArrayConstructor> = {
  float16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

const KSERVE: Record<ElementType, string> = {
  bool: "BOOL",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  float16: "FP16",
  float32: "FP32",
  float64: "FP64",
  string: "BYTES",
};

const FROM_KSERVE = new Map(Object.entries(KSERVE).map(([type, dt]) => [dt, type as ElementType]));

export const ELEMENT_TYPES = Object.keys(KSERVE) as ElementType[];

export const isElementType = (value: unknown): value is ElementType =>
  typeof value === "string" && Object.hasOwn(KSERVE, value);

/** The KServe v2 (Open Inference Protocol) datatype for an element type: "float32" → "FP32", "string" → "BYTES". */
export const kserveDatatype = (type: ElementType): string => KSERVE[type];

/** The element type for a KServe v2 datatype (exact, upper case), or undefined for one it doesn't know. */
export const elementTypeFromKserve = (datatype: string): ElementType | undefined => FROM_KSERVE.get(datatype);

/** Bytes per element in binary form; undefined for "string", which has no fixed size. */
export const elementSize = (type: ElementType): number | undefined =>
  type === "string" ? undefined : STORAGE[type].BYTES_PER_ELEMENT;

/** A zeroed array of `length` elements in the storage onnxruntime expects for `type`. */
export function allocateData(type: ElementType, length: number): TensorData {
  return type === "string" ? new Array<string>(length).fill("") : new STORAGE[type](length);
}

/** A typed array of `type` viewing `length` elements of `buffer` from `byteOffset` (no copy). Not for "string". */
export const viewData = (type: Exclude<ElementType, "string">, buffer: ArrayBuffer, length: number, byteOffset = 0): NumericData =>
  new STORAGE[type](buffer, byteOffset, length);

/** Number of elements in a tensor of `dims` (1 for rank 0). */
export const elementCount = (dims: readonly number[]): number => dims.reduce((n, d) => n * d, 1);

const roundHalfEven = (x: number): number => {
  const floor = Math.floor(x);
  const rest = x - floor;
  return rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
};

/** Magnitude from which a number rounds to float16 infinity: halfway between 65504 and 2^16, ties going to even (2^16). */
export const FLOAT16_OVERFLOW = 65520;

// The float64's bits, read through a shared buffer: a few integer operations per element instead of Math.log2.
const float64 = new Float64Array(1);
const words = new Uint32Array(float64.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * IEEE 754 half-precision bits for `x`, rounded once to nearest, ties to even, straight from the float64
 * (going through float32 first would round twice and can land one ulp off).
 */
export function float16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  float64[0] = x;
  const high = words[HIGH] ?? 0;
  const low = words[1 - HIGH] ?? 0;
  const sign = (high >>> 16) & 0x8000;
  const exponent = ((high >>> 20) & 0x7ff) - 1023;
  if (exponent >= 16) return sign | 0x7c00;
  // Subnormal halves are whole multiples of 2^-24; scaling by a power of two is exact, so this rounds once.
  if (exponent < -14) return sign | roundHalfEven(Math.abs(x) * 2 ** 24);
  // The top 10 of the 52 mantissa bits stay; the 11th decides, the other 41 only break ties.
  const mantissa = high & 0xfffff;
  const bits = ((exponent + 15) << 10) | (mantissa >>> 10);
  const roundBit = mantissa & 0x200;
  const sticky = (mantissa & 0x1ff) | low;
  // Rounding up may carry into the exponent, up to 0x7c00 (infinity), which is what IEEE rounding gives.
  return sign | (roundBit !== 0 && (sticky !== 0 || (bits & 1) === 1) ? bits + 1 : bits);
}

const POWERS = Array.from({ length: 32 }, (_, e) => 2 ** (e - 15));

/** The number that float16 bits stand for. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * (POWERS[exponent] ?? 0);
}
