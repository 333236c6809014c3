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
  | { kind: "dispose"; id: number };

export type WorkerReply =
  | { kind: "loaded"; id: number; inputs: WireValueMetadata[]; outputs: WireValueMetadata[] }
  | { kind: "ran"; id: number; outputs: Record<string, WireTensor>; runMs: number }
  | { kind: "disposed"; id: number }
  | { kind: "error"; id: number; message: string };

/**
 * Buffers that can be moved to the other thread instead of copied: only a typed array that owns its
 * whole buffer (a view into a pooled or shared buffer would detach data that is not ours).
 */
export function transferables(tensors: Iterable<WireTensor>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const t of tensors) {
    if (Array.isArray(t.data)) continue;
    const view = t.data as ArrayBufferView;
    if (view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) out.add(view.buffer);
  }
  return [...out];
}
