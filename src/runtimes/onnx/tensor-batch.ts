// Joining requests' tensors along axis 0 for one batched run, and cutting the outputs back per request.
// A mismatch here is the batcher's bug, not the client's, so it is an INTERNAL_ERROR.
import { InfernoError } from "../../errors/catalogue.js";
import { allocateData, elementCount } from "./tensor-types.js";
import type { DecodedTensor, NumericData, TensorData } from "./tensor-types.js";

const sameRowShape = (a: DecodedTensor, b: DecodedTensor): boolean =>
  a.dims.length === b.dims.length && a.dims.every((d, axis) => axis === 0 || d === b.dims[axis]);

/** Whether two tensors can go in one batch: same type, rank at least 1, equal dims past axis 0. */
export const canBatchTogether = (a: DecodedTensor, b: DecodedTensor): boolean =>
  a.type === b.type && a.dims.length > 0 && sameRowShape(a, b);

/** The tensors joined along axis 0, in order, into new storage; a single tensor comes back as is. */
export function concatBatch(tensors: readonly DecodedTensor[]): DecodedTensor {
  const [first] = tensors;
  if (first === undefined) throw new InfernoError("INTERNAL_ERROR", "concatBatch: no tensors");
  const odd = tensors.findIndex((t) => !canBatchTogether(first, t));
  if (odd >= 0) {
    const shape = (t: DecodedTensor | undefined) => `${t?.type}[${t?.dims.join(", ")}]`;
    throw new InfernoError("INTERNAL_ERROR", `concatBatch: tensor ${odd} (${shape(tensors[odd])}) doesn't batch with ${shape(first)}`);
  }
  if (tensors.length === 1) return first;
  const rows = tensors.reduce((n, t) => n + (t.dims[0] ?? 0), 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === "string") {
    return { type: first.type, dims, data: tensors.flatMap((t) => t.data as string[]) };
  }
  const data = allocateData(first.type, elementCount(dims)) as NumericData;
  let offset = 0;
  for (const t of tensors) {
    (data as { set(source: ArrayLike<unknown>, offset: number): void }).set(t.data as NumericData, offset);
    offset += t.data.length;
  }
  return { type: first.type, dims, data };
}

/** The tensor cut along axis 0 into pieces of `sizes` rows (summing to dims[0]), each copied into its own storage. */
export function splitBatch(tensor: DecodedTensor, sizes: readonly number[]): DecodedTensor[] {
  const rows = tensor.dims[0];
  const total = sizes.reduce((n, s) => n + s, 0);
  if (rows === undefined || total !== rows || sizes.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new InfernoError("INTERNAL_ERROR", `splitBatch: can't cut [${tensor.dims.join(", ")}] into rows [${sizes.join(", ")}]`);
  }
  const rowLength = elementCount(tensor.dims.slice(1));
  const rest = tensor.dims.slice(1);
  let row = 0;
  return sizes.map((size) => {
    const data: TensorData = tensor.data.slice(row * rowLength, (row + size) * rowLength);
    row += size;
    return { type: tensor.type, dims: [size, ...rest], data };
  });
}
