/** A tensor as it crosses the thread boundary (typed-array buffers are transferred, not copied). */
export interface WireTensor {
  type: string;
  dims: number[];
  data: ArrayBufferView | string[];
}

/** onnxruntime's value metadata, as plain data. */
export interface WireValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: Array<number | string>;
}

export type WorkerRequest =
  | { kind: "load"; id: number; path: string; options: Record<string, unknown> }
  | { kind: "run"; id: number; feeds: Record<string, WireTensor>; fetches: string[] }
  /** Several requests' feeds, joined along axis 0 on the worker, run once, and cut back per request there. */
  | { kind: "runBatch"; id: number; items: Array<Record<string, WireTensor>>; fetches: string[] }
  | { kind: "dispose"; id: number };

export type WorkerReply =
  | { kind: "loaded"; id: number; inputs: WireValueMetadata[]; outputs: WireValueMetadata[] }
  | { kind: "ran"; id: number; outputs: Record<string, WireTensor>; runMs: number }
  | { kind: "ranBatch"; id: number; outputs: Array<Record<string, WireTensor>>; runMs: number }
  | { kind: "disposed"; id: number }
  | { kind: "error"; id: number; message: string };

/** Buffers allocated for one request alone (see http/owned-body.ts): whatever else they hold, nothing reads it after the run. */
const owned = new WeakSet<ArrayBuffer>();

/**
 * The size from which a transport gives a request's bytes a buffer of their own (or claims the one it was handed),
 * so that its tensors can be moved to the session's thread: far above a Buffer pool slab (8 KiB by default), and
 * large enough that a copy would cost more than the allocation.
 */
export const OWN_BUFFER_BYTES = 64 * 1024;

/** Marks `buffer` as one request's own, so a tensor viewing part of it can be moved to the session's thread. */
export function ownBuffer(buffer: ArrayBuffer): void {
  owned.add(buffer);
}

/** Whether `buffer` was marked with ownBuffer. */
function isOwnBuffer(buffer: ArrayBufferLike): boolean {
  return buffer instanceof ArrayBuffer && owned.has(buffer);
}

/**
 * `bytes` moved down to a multiple of `size` within its buffer when that buffer is a request's own (ownBuffer) and
 * the bytes it moves over belong to none of `others` (they are framing or headers, decoded already); otherwise
 * `bytes` as it is (decodeRawTensor copies a misaligned view). A typed array can then view it, and the buffer
 * moves to the session's thread with no copy. `others` are the request's other raw tensors, where they are now.
 */
export function alignOwned(bytes: Uint8Array, size: number, others: Iterable<Uint8Array>): Uint8Array {
  const shift = bytes.byteOffset % size;
  if (shift === 0 || !isOwnBuffer(bytes.buffer)) return bytes;
  const from = bytes.byteOffset;
  const to = from - shift;
  for (const other of others) {
    if (other !== bytes && other.buffer === bytes.buffer && other.byteOffset < from && other.byteOffset + other.byteLength > to) return bytes;
  }
  new Uint8Array(bytes.buffer).copyWithin(to, from, from + bytes.byteLength);
  return Buffer.from(bytes.buffer, to, bytes.byteLength);
}

/**
 * Buffers that can be moved to the other thread instead of copied: a typed array that spans its whole
 * buffer, or views into a buffer marked with ownBuffer (a view into a pooled or shared buffer would
 * detach data that is not ours). After the move the sender's views are empty.
 */
export function transferables(tensors: Iterable<WireTensor>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const t of tensors) {
    if (Array.isArray(t.data)) continue;
    const view = t.data as ArrayBufferView;
    if (!(view.buffer instanceof ArrayBuffer)) continue;
    if (owned.has(view.buffer) || (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength)) out.add(view.buffer);
  }
  return [...out];
}
