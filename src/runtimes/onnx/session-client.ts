import { Worker } from "node:worker_threads";
import type ort from "onnxruntime-node";
import { InfernoError } from "../../errors/catalogue.js";
import { transferables, type WireTensor, type WireValueMetadata, type WorkerReply, type WorkerRequest } from "./session-protocol.js";

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void };
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;
type RunResult = { outputs: Record<string, WireTensor>; runMs: number };

/**
 * When a model counts as quick: `streak` runs in a row on its worker each took at most `maxRunMs`. A quick model's
 * single requests then run on the main thread while its worker has nothing to do, which saves the hand-off to the
 * worker and back (two thread wake-ups, 0.2-0.3 ms a request on mnist-8 here: README, *ONNX models*); under load they
 * queue at the worker as before. Only requests no larger than the streak's largest (input bytes) run there, so a
 * model with dynamic shapes does not bring a big input to the main thread; `slowInARow` main-thread runs over
 * `bailMs` send the model back to its worker for good. Only files up to `maxFileBytes` qualify: the main thread
 * holds a second session of the model.
 */
export const QUICK_RUNS = { maxRunMs: 0.5, streak: 16, bailMs: 2, slowInARow: 3, maxFileBytes: 4 * 1024 * 1024 } as const;

type QuickLimits = Record<"maxRunMs" | "streak" | "bailMs" | "slowInARow", number>;

/** Counts quick runs on the worker, and watches the main thread's runs (see QUICK_RUNS). */
export class QuickRunPolicy {
  private streak = 0;
  private streakBytes = 0;
  private slow = 0;
  private off: boolean;
  /** The largest request of the streak that made the model quick (0 until then). */
  private maxBytes = 0;

  constructor(eligible: boolean, private readonly limits: QuickLimits = QUICK_RUNS) {
    this.off = !eligible;
  }

  /** A run of `bytes` of input on the worker took `ms`; true exactly when that makes the streak: time to open the main thread's session. */
  workerRan(ms: number, bytes: number): boolean {
    if (this.off || this.maxBytes > 0) return false;
    if (ms > this.limits.maxRunMs) {
      this.streak = 0;
      this.streakBytes = 0;
      return false;
    }
    this.streak++;
    this.streakBytes = Math.max(this.streakBytes, bytes);
    if (this.streak < this.limits.streak) return false;
    this.maxBytes = this.streakBytes;
    return true;
  }

  /** Whether a request of `bytes` may run on the main thread. */
  fits(bytes: number): boolean {
    return !this.off && bytes <= this.maxBytes;
  }

  /** A run on the main thread took `ms`; false once it was the last of too many slow ones, and the model keeps to its worker. */
  mainRan(ms: number): boolean {
    this.slow = ms > this.limits.bailMs ? this.slow + 1 : 0;
    if (this.slow >= this.limits.slowInARow) this.off = true;
    return !this.off;
  }

  /** The main thread's session could not open, or was too slow: the worker only, from now on. */
  stop(): void {
    this.off = true;
  }
}

/** Input bytes of a request: what bounds its run for a model whose shapes vary. */
function inputBytes(feeds: Record<string, WireTensor>): number {
  let n = 0;
  for (const t of Object.values(feeds)) n += Array.isArray(t.data) ? t.data.reduce((sum, str) => sum + str.length, 0) : t.data.byteLength;
  return n;
}

/**
 * An onnxruntime session living on its own worker thread; calls are messages, tensors are transferred. A quick
 * model also gets a session on the main thread for requests that find the worker idle (QUICK_RUNS).
 */
export class SessionClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;
  private main: { session: ort.InferenceSession; run: typeof import("./session-run.js").runSession } | undefined;
  private mainRunning: Promise<RunResult> | undefined;
  private disposed = false;
  /** Runs made on the main thread so far. */
  mainThreadRuns = 0;

  private constructor(
    private readonly path: string,
    private readonly options: Record<string, unknown>,
    private readonly quick: QuickRunPolicy,
  ) {
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
   * under heavy load, exiting with code 0 before answering) is given one more try. `mayRunOnMain`: the
   * model may also run on the main thread once it proves quick (QUICK_RUNS).
   */
  static async open(path: string, options: Record<string, unknown>, mayRunOnMain = false, attempt = 1): Promise<{ client: SessionClient; inputs: WireValueMetadata[]; outputs: WireValueMetadata[] }> {
    const client = new SessionClient(path, options, new QuickRunPolicy(mayRunOnMain));
    try {
      const r = await client.call({ kind: "load", path, options });
      if (r.kind !== "loaded") throw new Error("unexpected reply");
      return { client, inputs: r.inputs, outputs: r.outputs };
    } catch (err) {
      await client.worker.terminate();
      if (client.dead && attempt < 2) return SessionClient.open(path, options, mayRunOnMain, attempt + 1);
      throw err;
    }
  }

  /** Runs the session; the feeds' buffers may be transferred to the worker and must not be used afterwards. */
  async run(feeds: Record<string, WireTensor>, fetches: string[]): Promise<RunResult> {
    const bytes = inputBytes(feeds);
    // One run at a time here (onnxruntime-node runs it in a setImmediate, so it is not done when run() returns).
    if (this.main && !this.mainRunning && this.pending.size === 0 && !this.dead && this.quick.fits(bytes)) return this.runOnMain(this.main, feeds, fetches);
    const r = await this.call({ kind: "run", feeds, fetches }, transferables(Object.values(feeds)));
    if (r.kind !== "ran") throw new Error("unexpected reply");
    if (this.quick.workerRan(r.runMs, bytes)) void this.openMain();
    return { outputs: r.outputs, runMs: r.runMs };
  }

  private async runOnMain(main: NonNullable<SessionClient["main"]>, feeds: Record<string, WireTensor>, fetches: string[]): Promise<RunResult> {
    const running = main.run(main.session, feeds, fetches);
    this.mainRunning = running;
    try {
      const result = await running;
      this.mainThreadRuns++;
      if (!this.quick.mainRan(result.runMs)) this.closeMain();
      return result;
    } finally {
      this.mainRunning = undefined;
    }
  }

  /** Opens the main thread's session (onnxruntime's binding loads on the main thread then, once). */
  private async openMain(): Promise<void> {
    try {
      const { openSession, runSession } = await import("./session-run.js");
      const session = await openSession(this.path, this.options);
      if (this.dead || this.disposed) void session.release();
      else this.main = { session, run: runSession };
    } catch {
      this.quick.stop();
    }
  }

  /** Stops running on the main thread and releases its session once no run uses it. */
  private closeMain(): void {
    this.quick.stop();
    const main = this.main;
    this.main = undefined;
    if (!main) return;
    const release = () => void main.session.release().catch(() => undefined);
    if (this.mainRunning) void this.mainRunning.then(release, release);
    else release();
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
    this.disposed = true;
    this.closeMain();
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
