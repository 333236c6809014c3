// One element at a time between JSON and tensor storage: what each type accepts, and how each is written back.
// JSON can't carry NaN or ±Infinity, so float elements travel as the strings "NaN", "Infinity" and "-Infinity"
// both ways; 64-bit integers beyond ±(2^53 - 1) travel as decimal strings both ways, since a JSON number that
// large has already lost precision when it was parsed.
import { allocateData, FLOAT16_OVERFLOW, float16Bits, float16Value } from "./tensor-types.js";
import type { ElementType, TensorData } from "./tensor-types.js";

/** Why one element was refused: what its type takes, and what came (the number or string itself, else its JSON kind). */
export interface ElementProblem {
  expected: string;
  got: unknown;
  /** `got` as the message shows it: a string value quoted, a kind bare. */
  gotText: string;
}

/** Stores `value` at `index`, or says why it can't. */
export type ElementWriter = (value: unknown, index: number) => ElementProblem | undefined;

export const jsonKind = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);

const INT_RANGES = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
} as const;

const BIGINT_RANGES = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
} as const;

const BIGINT_PATTERNS = { int64: /^-?\d{1,20}$/, uint64: /^\d{1,20}$/ } as const;

const NON_FINITE = new Set(["NaN", "Infinity", "-Infinity"]);
const FLOAT32_MAX = 3.4028234663852886e38;

const EXPECTED: Record<ElementType, string> = {
  float16: `number within float16 range (magnitude below ${FLOAT16_OVERFLOW})`,
  float32: `number within float32 range (±${FLOAT32_MAX})`,
  float64: "number",
  int8: "integer in [-128, 127]",
  int16: "integer in [-32768, 32767]",
  int32: "integer in [-2147483648, 2147483647]",
  int64: `integer in [${BIGINT_RANGES.int64[0]}, ${BIGINT_RANGES.int64[1]}], as a decimal string beyond ±${Number.MAX_SAFE_INTEGER}`,
  uint8: "integer in [0, 255]",
  uint16: "integer in [0, 65535]",
  uint32: "integer in [0, 4294967295]",
  uint64: `integer in [0, ${BIGINT_RANGES.uint64[1]}], as a decimal string beyond ${Number.MAX_SAFE_INTEGER}`,
  bool: "boolean",
  string: "string",
};

/** What an element of `type` must be, as error details say it. */
export const expectedElement = (type: ElementType): string => EXPECTED[type];

const clip = (s: string): string => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

function problem(type: ElementType, value: unknown, stringsAccepted: boolean): ElementProblem {
  const expected = EXPECTED[type];
  if (typeof value === "number") return { expected, got: value, gotText: String(value) };
  if (stringsAccepted && typeof value === "string") return { expected, got: clip(value), gotText: JSON.stringify(clip(value)) };
  return { expected, got: jsonKind(value), gotText: jsonKind(value) };
}

/** Zeroed storage for `length` elements of `type`, and the writer that validates and fills it. */
export function elementWriter(type: ElementType, length: number): { data: TensorData; write: ElementWriter } {
  const data = allocateData(type, length);
  const out = data as unknown as { [index: number]: unknown };
  switch (type) {
    case "float16":
    case "float32":
    case "float64": {
      const store = type === "float16" ? float16Bits : (x: number) => x;
      const overflows = (x: number): boolean =>
        type === "float16" ? Math.abs(x) >= FLOAT16_OVERFLOW : type === "float32" && !Number.isFinite(Math.fround(x));
      return {
        data,
        write: (value, index) => {
          if (typeof value === "number" && !overflows(value)) out[index] = store(value);
          else if (typeof value === "string" && NON_FINITE.has(value)) out[index] = store(Number(value));
          else return problem(type, value, false);
          return undefined;
        },
      };
    }
    case "int64":
    case "uint64": {
      const [min, max] = BIGINT_RANGES[type];
      const pattern = BIGINT_PATTERNS[type];
      return {
        data,
        write: (value, index) => {
          let big: bigint | undefined;
          if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
          else if (typeof value === "string" && pattern.test(value)) big = BigInt(value);
          if (big === undefined || big < min || big > max) return problem(type, value, true);
          out[index] = big;
          return undefined;
        },
      };
    }
    case "bool":
      return {
        data,
        write: (value, index) => {
          if (typeof value !== "boolean") return problem(type, value, false);
          out[index] = value ? 1 : 0;
          return undefined;
        },
      };
    case "string":
      return {
        data,
        write: (value, index) => {
          if (typeof value !== "string") return problem(type, value, false);
          out[index] = value;
          return undefined;
        },
      };
    default: {
      const [min, max] = INT_RANGES[type];
      return {
        data,
        write: (value, index) => {
          if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) return problem(type, value, false);
          out[index] = value;
          return undefined;
        },
      };
    }
  }
}

const jsonFloat = (x: number): number | string => (Number.isFinite(x) ? x : String(x));
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const jsonBigInt = (x: bigint): number | string => (x >= -MAX_SAFE && x <= MAX_SAFE ? Number(x) : x.toString());

/**
 * The elements of tensor storage as JSON values, in order: booleans for bool, numbers for float16 (from its bits),
 * strings for non-finite floats and for 64-bit integers beyond ±(2^53 - 1).
 */
export function jsonElements(type: ElementType, data: ArrayLike<unknown>): unknown[] {
  const values = new Array<unknown>(data.length);
  const read = jsonReader(type, data);
  for (let i = 0; i < data.length; i++) values[i] = read(data[i]);
  return values;
}

function jsonReader(type: ElementType, data: ArrayLike<unknown>): (raw: unknown) => unknown {
  switch (type) {
    case "float16":
      // Float16Array (where the runtime has one) holds values; everywhere else onnxruntime hands back the bits.
      return data instanceof Uint16Array ? (raw) => jsonFloat(float16Value(raw as number)) : (raw) => jsonFloat(Number(raw));
    case "float32":
    case "float64":
      return (raw) => jsonFloat(raw as number);
    case "int64":
    case "uint64":
      return (raw) => jsonBigInt(raw as bigint);
    case "bool":
      return (raw) => raw !== 0 && raw !== false;
    default:
      return (raw) => raw;
  }
}
