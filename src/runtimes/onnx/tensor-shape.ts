// Shape checks shared by every request form, the walk over nested JSON arrays, and the errors they raise.
// Every error names the input (`details.input`, `param: inputs.<name>`) and says what was expected and what came.
import { InfernoError } from "../../errors/catalogue.js";
import { jsonKind } from "./tensor-elements.js";
import type { ElementProblem, ElementWriter } from "./tensor-elements.js";
import { elementCount, MAX_TENSOR_RANK } from "./tensor-types.js";
import type { TensorSpec } from "./tensor-types.js";

/** Bounds on what one request may ask the codec to build. */
export interface DecodeLimits {
  /** Most elements in one input tensor; more is PAYLOAD_TOO_LARGE. */
  maxElements: number;
}

export function invalidInput(spec: TensorSpec, message: string, details: Record<string, unknown>): InfernoError {
  return new InfernoError("INVALID_REQUEST", `inputs.${spec.name}${message}`, { input: spec.name, ...details }, { param: `inputs.${spec.name}` });
}

const indexText = (path: readonly number[]): string => path.map((i) => `[${i}]`).join("");

const fixedDim = (dim: number | string | undefined): number | undefined =>
  typeof dim === "number" && Number.isInteger(dim) && dim >= 0 ? dim : undefined;

const specShapeText = (spec: TensorSpec): string =>
  `[${spec.shape.map((d) => (typeof d === "string" ? d : (fixedDim(d) ?? "?"))).join(", ")}]`;

function rankError(spec: TensorSpec, got: number | string): InfernoError {
  const specRank = spec.shape.length;
  const expected = specRank > 0 ? specRank : `at most ${MAX_TENSOR_RANK}`;
  const shape = specRank > 0 ? ` (shape ${specShapeText(spec)})` : "";
  return invalidInput(spec, `: expected rank ${expected}${shape}, got rank ${got}`, { expected, got });
}

/** The error for one refused element at `path` (its index in the tensor); `where` adds how the request addressed it. */
export function elementError(spec: TensorSpec, problem: ElementProblem, path: number[], where = ""): InfernoError {
  const { expected, got, gotText } = problem;
  return invalidInput(spec, `${indexText(path)}${where}: expected ${expected}, got ${gotText}`, { path, expected, got });
}

/** Where element `flat` sits in a row-major tensor of `dims`. */
export function unravel(flat: number, dims: readonly number[]): number[] {
  const path = new Array<number>(dims.length);
  for (let axis = dims.length - 1; axis >= 0; axis--) {
    const size = dims[axis] ?? 1;
    path[axis] = flat % size;
    flat = Math.floor(flat / size);
  }
  return path;
}

/**
 * Checks `dims` against the spec: the same rank (any rank up to MAX_TENSOR_RANK when the spec's shape is `[]`,
 * which onnxruntime also reports for an unknown shape) and every fixed dimension.
 */
export function checkDims(spec: TensorSpec, dims: readonly number[]): void {
  const specRank = spec.shape.length;
  if (dims.length > MAX_TENSOR_RANK || (specRank > 0 && dims.length !== specRank)) throw rankError(spec, dims.length);
  spec.shape.forEach((dim, axis) => {
    const want = fixedDim(dim);
    if (want !== undefined && dims[axis] !== want) {
      throw invalidInput(spec, `: axis ${axis} must be ${want} (shape ${specShapeText(spec)}), got ${dims[axis]}`, {
        axis,
        expected: want,
        got: dims[axis],
      });
    }
  });
}

/** The element count of `dims`, refused as PAYLOAD_TOO_LARGE past the limit before anything is allocated. */
export function checkCount(spec: TensorSpec, dims: readonly number[], limits: DecodeLimits): number {
  const count = elementCount(dims);
  if (count > limits.maxElements) {
    throw new InfernoError(
      "PAYLOAD_TOO_LARGE",
      `inputs.${spec.name}: ${count} elements, more than the limit of ${limits.maxElements}`,
      { input: spec.name, expected: `at most ${limits.maxElements} elements`, got: count },
      { param: `inputs.${spec.name}` },
    );
  }
  return count;
}

/** An explicit shape (binary and KServe forms) as dims, each a non-negative integer; rank and fixed dims checked. */
export function parseShape(spec: TensorSpec, shape: unknown): number[] {
  if (!Array.isArray(shape)) {
    throw invalidInput(spec, `.shape: expected an array of dimensions, got ${jsonKind(shape)}`, {
      expected: "array of dimensions",
      got: jsonKind(shape),
    });
  }
  if (shape.length > MAX_TENSOR_RANK) throw rankError(spec, shape.length);
  shape.forEach((dim: unknown, axis) => {
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
      const got = typeof dim === "number" ? dim : jsonKind(dim);
      throw invalidInput(spec, `.shape[${axis}]: expected a non-negative integer, got ${got}`, {
        axis,
        expected: "non-negative integer",
        got,
      });
    }
  });
  const dims = shape as number[];
  checkDims(spec, dims);
  return [...dims];
}

/**
 * The shape of a nested JSON array, read down its first elements (at most MAX_TENSOR_RANK levels, so hostile
 * nesting is refused at once). An empty array ends the walk; axes the spec still has past it hold no elements,
 * so they take the spec's fixed size, or 0.
 */
export function nestedShape(spec: TensorSpec, value: unknown): number[] {
  const dims: number[] = [];
  let level = value;
  while (Array.isArray(level)) {
    if (dims.length === MAX_TENSOR_RANK) throw rankError(spec, `more than ${MAX_TENSOR_RANK}`);
    dims.push(level.length);
    if (level.length === 0) {
      for (let axis = dims.length; axis < spec.shape.length; axis++) dims.push(fixedDim(spec.shape[axis]) ?? 0);
      break;
    }
    level = level[0];
  }
  checkDims(spec, dims);
  return dims;
}

function expectArray(spec: TensorSpec, value: unknown, length: number, path: number[]): unknown[] {
  if (Array.isArray(value) && value.length === length) return value;
  const got = Array.isArray(value) ? `array of length ${value.length}` : jsonKind(value);
  throw invalidInput(spec, `${indexText(path)}: expected an array of length ${length}, got ${got}`, {
    path,
    expected: `array of length ${length}`,
    got,
  });
}

/** Writes the elements of nested arrays shaped exactly `dims` in row-major order; iterative, and refuses ragged arrays. */
export function fillNested(spec: TensorSpec, value: unknown, dims: readonly number[], write: ElementWriter): void {
  const rank = dims.length;
  if (rank === 0) {
    const problem = write(value, 0);
    if (problem) throw elementError(spec, problem, []);
    return;
  }
  const arrays: unknown[][] = [expectArray(spec, value, dims[0] ?? 0, [])];
  const index: number[] = [0];
  let depth = 0;
  let flat = 0;
  while (depth >= 0) {
    const array = arrays[depth] ?? [];
    const i = index[depth] ?? 0;
    if (i === array.length) {
      depth -= 1;
      if (depth >= 0) index[depth] = (index[depth] ?? 0) + 1;
    } else if (depth === rank - 1) {
      const problem = write(array[i], flat);
      if (problem) throw elementError(spec, problem, index.slice(0, rank));
      flat += 1;
      index[depth] = i + 1;
    } else {
      arrays[depth + 1] = expectArray(spec, array[i], dims[depth + 1] ?? 0, index.slice(0, depth + 1));
      index[depth + 1] = 0;
      depth += 1;
    }
  }
}
