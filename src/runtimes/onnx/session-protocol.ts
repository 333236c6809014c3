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

/** Marks `buffer` as one request's own, so a tensor viewing part of it can be moved to the session's thread. */
export function ownBuffer(buffer: ArrayBuffer): void {
  owned.add(buffer);
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
