// Runs one onnxruntime session on a worker thread. onnxruntime-node's `session.run` is synchronous
// native code behind a Promise (measured: a 97 ms run stalls the event loop for 97 ms), so a session on
// the main thread would freeze every other request while it runs. (Only a model proven quick also runs
// there, while this worker idles: session-client.ts.)
import { parentPort } from "node:worker_threads";
import type ort from "onnxruntime-node";
import { openSession, runSession, toFeeds, toWire } from "./session-run.js";
import { concatBatch, splitBatch } from "./tensor-batch.js";
import type { DecodedTensor } from "./tensor-types.js";
import { transferables, type WorkerReply, type WorkerRequest, type WireTensor } from "./session-protocol.js";

let session: ort.InferenceSession | undefined;
const port = parentPort!;

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

port.on("message", async (msg: WorkerRequest) => {
  try {
    if (msg.kind === "load") {
      session = await openSession(msg.path, msg.options);
      reply({ kind: "loaded", id: msg.id, inputs: session.inputMetadata as never, outputs: session.outputMetadata as never });
    } else if (msg.kind === "run") {
      if (!session) throw new Error("session not loaded");
      const { outputs, runMs } = await runSession(session, msg.feeds, msg.fetches);
      reply({ kind: "ran", id: msg.id, outputs, runMs }, transferables(Object.values(outputs)));
    } else if (msg.kind === "runBatch") {
      // Joining and cutting happen here, off the main thread: for large inputs they are the main thread's
      // biggest cost per request (copies, and the garbage collection that follows them).
      if (!session) throw new Error("session not loaded");
      const merged: Record<string, WireTensor> = {};
      for (const name of Object.keys(msg.items[0] ?? {})) {
        merged[name] = concatBatch(msg.items.map((item) => item[name] as DecodedTensor)) as WireTensor;
      }
      const started = performance.now();
      const out = await session.run(toFeeds(merged), msg.fetches);
      const runMs = performance.now() - started;
      const sizes = msg.items.map((item) => (Object.values(item)[0]?.dims[0] ?? 0));
      const outputs: Array<Record<string, WireTensor>> = msg.items.map(() => ({}));
      for (const [name, t] of Object.entries(out)) {
        splitBatch(toWire(t) as DecodedTensor, sizes).forEach((part, i) => (outputs[i]![name] = part as WireTensor));
      }
      reply({ kind: "ranBatch", id: msg.id, outputs, runMs }, transferables(outputs.flatMap((o) => Object.values(o))));
    } else {
      await session?.release();
      session = undefined;
      reply({ kind: "disposed", id: msg.id });
    }
  } catch (err) {
    reply({ kind: "error", id: msg.id, message: (err as Error).message ?? String(err) });
  }
});
