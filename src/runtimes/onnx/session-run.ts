// One onnxruntime run, from wire tensors to wire tensors: what the session's worker does for a request, and what
// the main thread does for a quick model's request while that worker idles (session-client.ts).
import ort from "onnxruntime-node";
import type { WireTensor } from "./session-protocol.js";

export const toWire = (t: ort.Tensor): WireTensor => ({ type: t.type, dims: [...t.dims], data: t.data as WireTensor["data"] });

export const toFeeds = (tensors: Record<string, WireTensor>): Record<string, ort.Tensor> => {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) feeds[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
  return feeds;
};

/** Runs `session` on `feeds`; `runMs` is the run alone (what decides whether a model is quick). */
export async function runSession(session: ort.InferenceSession, feeds: Record<string, WireTensor>, fetches: string[]): Promise<{ outputs: Record<string, WireTensor>; runMs: number }> {
  // onnxruntime-node runs the session in a setImmediate. On the main thread other work may come first, so the
  // clock starts in an immediate queued just before that one: it times the run, not the wait for its turn.
  let started = performance.now();
  setImmediate(() => (started = performance.now()));
  const out = await session.run(toFeeds(feeds), fetches);
  const runMs = performance.now() - started;
  const outputs: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(out)) outputs[name] = toWire(t);
  return { outputs, runMs };
}

export const openSession = (path: string, options: Record<string, unknown>) => ort.InferenceSession.create(path, options as ort.InferenceSession.SessionOptions);
