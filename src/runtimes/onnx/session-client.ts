import { Worker } from "node:worker_threads";
import { InfernoError } from "../../errors/catalogue.js";
import { transferables, type WireTensor, type WireValueMetadata, type WorkerReply, type WorkerRequest } from "./session-protocol.js";

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void };
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

/** An onnxruntime session living on its own worker thread; calls are messages, tensors are transferred. */
export class SessionClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;

  private constructor() {
    this.worker = new Worker(new URL("./session-worker.js", import.meta.url));
    this.worker.unref();
    this.worker.on("message", (msg: WorkerReply) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.kind === "error") p.reject(new Error(msg.message));
      else p.resolve(msg);
    });
    const fail = (err: Error) => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`onnxruntime worker exited (code ${code})`)));
  }

  /** False once the worker has died; the model must then be loaded again. */
  get alive(): boolean {
    return this.dead === undefined;
  }

  /**
   * Starts a worker and creates the session in it. A worker that vanishes during the load (seen once
   * under heavy load, exiting with code 0 before answering) is given one more try.
   */
  static async open(path: string, options: Record<string, unknown>, attempt = 1): Promise<{ client: SessionClient; inputs: WireValueMetadata[]; outputs: WireValueMetadata[] }> {
    const client = new SessionClient();
    try {
      const r = await client.call({ kind: "load", path, options });
      if (r.kind !== "loaded") throw new Error("unexpected reply");
      return { client, inputs: r.inputs, outputs: r.outputs };
    } catch (err) {
      await client.worker.terminate();
      if (client.dead && attempt < 2) return SessionClient.open(path, options, attempt + 1);
      throw err;
    }
  }

  /** Runs the session; the feeds' buffers are transferred to the worker and must not be used afterwards. */
  async run(feeds: Record<string, WireTensor>, fetches: string[]): Promise<{ outputs: Record<string, WireTensor>; runMs: number }> {
    const r = await this.call({ kind: "run", feeds, fetches }, transferables(Object.values(feeds)));
    if (r.kind !== "ran") throw new Error("unexpected reply");
    return { outputs: r.outputs, runMs: r.runMs };
  }

  /**
   * Runs several requests' feeds as one batch: the worker joins them along axis 0 and answers each
   * request's outputs. Every feed's buffer is transferred and must not be used afterwards.
   */
  async runBatch(items: Array<Record<string, WireTensor>>, fetches: string[]): Promise<{ outputs: Array<Record<string, WireTensor>>; runMs: number }> {
    const r = await this.call({ kind: "runBatch", items, fetches }, transferables(items.flatMap((feeds) => Object.values(feeds))));
    if (r.kind !== "ranBatch") throw new Error("unexpected reply");
    return { outputs: r.outputs, runMs: r.runMs };
  }

  async dispose(): Promise<void> {
    if (!this.dead) await this.call({ kind: "dispose" }).catch(() => undefined);
    await this.worker.terminate();
  }

  private call(request: Request, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.dead) return Promise.reject(new InfernoError("INFERENCE_FAILED", `the model's worker stopped: ${this.dead.message}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id }, transfer);
    });
  }
}
