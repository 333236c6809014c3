// Server-side pulls (POST /models/pull, POST /api/pull): pullModel, the CLI's resumable and verified
// download, run for a client. Owns what the dialects share: one pull per model id at a time, the guarded
// fetch (no private addresses unless pullAllowPrivate), progress thinned to one event per interval, the
// PullError → catalogue code mapping, and the registry rescan once the file is in place.
import { InfernoError, isInfernoError } from "../errors/catalogue.js";
import { PrivateAddressError, guardedFetch } from "../pull/guarded-fetch.js";
import { PullError, planPull, pullModel, type PullErrorCode, type PullProgress, type PullResult } from "../pull/pull-model.js";
import type { ModelRegistry } from "../registry/model-registry.js";

/** What a pull reports, in order: downloading (repeatedly), verifying, then success; a failure is thrown. */
export type PullEvent =
  | { status: "downloading"; completed: number; total: number | null }
  | { status: "verifying" }
  | { status: "success"; id: string; result: PullResult };

export interface PullRequest {
  /** An http(s) URL or hf:OWNER/REPO[@REVISION]/FILE. */
  source: string;
  name?: string | undefined;
  sha256?: string | undefined;
  force?: boolean | undefined;
}

export interface StartedPull {
  id: string;
  /** The file written into the models dir (ID.gguf or ID.onnx). */
  fileName: string;
  /** Ends after success; throws an InfernoError on failure; ends quietly when the caller's signal aborted it. */
  events: AsyncIterable<PullEvent>;
}

export interface ModelPullerOptions {
  registry: ModelRegistry;
  modelsDir: string;
  hfEndpoint: string;
  /** Config `pullAllowPrivate`: let pulls reach private, loopback and link-local addresses. */
  allowPrivate: boolean;
  progressIntervalMs?: number;
  fetchImpl?: typeof fetch;
}

const PARAM_OF: Partial<Record<PullErrorCode, string>> = { INVALID_SOURCE: "source", INVALID_NAME: "name" };

/** A failed pull as the catalogue error a client gets; `details.reason` keeps pullModel's finer code. */
function pullFailure(err: unknown, id?: string): unknown {
  if (!(err instanceof PullError)) return err;
  const details = { reason: err.code as string, ...(id ? { model: id } : {}) };
  switch (err.code) {
    case "INVALID_SOURCE":
    case "INVALID_NAME":
      return new InfernoError("INVALID_REQUEST", err.message, details, { cause: err, param: PARAM_OF[err.code]! });
    case "ALREADY_EXISTS":
      // pullModel's message names the file's absolute path; the client gets the id.
      return new InfernoError("MODEL_EXISTS", `a model named '${id}' already exists (set force to replace it)`, details, { cause: err });
    case "INVALID_MODEL_FILE":
    case "CHECKSUM_MISMATCH":
      return new InfernoError("INVALID_MODEL_FILE", err.message, details, { cause: err });
    case "DOWNLOAD_FAILED":
    case "SIZE_MISMATCH": {
      const refused = causeOf(err, PrivateAddressError);
      if (refused) return new InfernoError("INVALID_REQUEST", refused.message, { ...details, reason: "PRIVATE_ADDRESS" }, { cause: err, param: "source" });
      return new InfernoError("DOWNLOAD_FAILED", err.message, details, { cause: err });
    }
  }
}

function causeOf<T extends Error>(err: unknown, type: new (...args: never[]) => T): T | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) if (e instanceof type) return e;
  return undefined;
}

/** Runs server-side pulls into the models dir; one per model id at a time. */
export class ModelPuller {
  private readonly active = new Set<string>();
  private readonly fetchImpl: typeof fetch;
  private readonly intervalMs: number;

  constructor(private readonly opts: ModelPullerOptions) {
    this.fetchImpl = opts.fetchImpl ?? guardedFetch({ allowPrivate: opts.allowPrivate });
    this.intervalMs = opts.progressIntervalMs ?? 100;
  }

  /**
   * Checks the request and starts the download. Resolves once the source has answered with the file
   * (the first progress event is queued); a refusal or a failure before that rejects with the coded
   * error, so a client gets it as a plain HTTP error rather than inside a stream.
   */
  async start(request: PullRequest, signal: AbortSignal): Promise<StartedPull> {
    const options = { ...request, hfEndpoint: this.opts.hfEndpoint };
    let id: string;
    let ext: string;
    try {
      ({ id, ext } = planPull(options));
    } catch (err) {
      throw pullFailure(err);
    }
    // Checked and taken with no await between: a second pull of the id would share the part file.
    if (this.active.has(id)) {
      throw new InfernoError("MODEL_BUSY", `model '${id}' is already being pulled`, { model: id, reason: "PULL_IN_PROGRESS" });
    }
    this.active.add(id);
    try {
      await this.refuseTaken(id, ext, request.force === true);
    } catch (err) {
      this.active.delete(id);
      throw err;
    }

    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const channel = new Channel<PullEvent>();
    let begun = false;
    let markBegun!: () => void;
    const beginning = new Promise<void>((resolve) => (markBegun = resolve));
    let sentAt = -Infinity;
    let held: PullProgress | undefined;
    const send = (p: PullProgress) => channel.push({ status: "downloading", completed: p.received, total: p.total });
    const onProgress = (p: PullProgress) => {
      begun = true;
      markBegun();
      const now = performance.now();
      if (now - sentAt < this.intervalMs) return void (held = p);
      sentAt = now;
      held = undefined;
      send(p);
    };
    const flush = () => {
      if (held) send(held);
      held = undefined;
    };

    const settled = (async (): Promise<unknown> => {
      try {
        const result = await pullModel({
          ...options, modelsDir: this.opts.modelsDir, signal: controller.signal, fetchImpl: this.fetchImpl, onProgress,
          onVerifying: () => {
            flush();
            channel.push({ status: "verifying" });
          },
        });
        await this.afterPull(id, request.force === true);
        channel.push({ status: "success", id, result });
        channel.end();
        return undefined;
      } catch (err) {
        channel.end(err);
        return err;
      } finally {
        signal.removeEventListener("abort", onAbort);
        this.active.delete(id);
      }
    })();

    const failed = await Promise.race([beginning.then(() => undefined), settled]);
    if (!begun) throw this.failure(failed, signal, id);

    const puller = this;
    async function* events(): AsyncGenerator<PullEvent> {
      let done = false;
      try {
        yield* channel.drain();
        done = true;
      } catch (err) {
        done = true;
        if (signal.aborted && !isInfernoError(signal.reason)) return; // the client left: nobody to tell
        throw puller.failure(err, signal, id);
      } finally {
        // A consumer that stops early (its client left) stops the download; the part stays for a resume.
        if (!done) {
          controller.abort(new Error("the client stopped reading"));
          await settled;
        }
      }
    }
    return { id, fileName: id + ext, events: events() };
  }

  private failure(err: unknown, signal: AbortSignal, id: string): unknown {
    // Ended for a coded reason (the server draining): that reason is the answer.
    if (signal.aborted && isInfernoError(signal.reason)) return signal.reason;
    if (signal.aborted) return new InfernoError("CANCELLED", "the client went away; the partial download is kept for a resume", { model: id });
    return pullFailure(err, id);
  }

  /**
   * The id must be free, or with force name a models-dir file of the same type (replaced by the rename).
   * A model registered by path, or one of the other type, is never replaced by a pull.
   */
  private async refuseTaken(id: string, ext: string, force: boolean): Promise<void> {
    await this.opts.registry.scan();
    const taken = this.opts.registry.list().find((m) => m.id === id);
    if (!taken) return;
    if (force && taken.source === "models-dir" && `.${taken.type}` === ext) return;
    const why = !force ? " (set force to replace it)" : taken.source === "models-dir" ? `; it is a .${taken.type} file, which force does not replace` : "; it is registered by path, which a pull never replaces";
    throw new InfernoError("MODEL_EXISTS", `a model named '${id}' already exists${why}`, { model: id, reason: "ALREADY_EXISTS" });
  }

  /** Lists the new file at once; a replaced model that was loaded is unloaded so its next use loads the new file. */
  private async afterPull(id: string, force: boolean): Promise<void> {
    const { registry } = this.opts;
    await registry.scan();
    if (!force || !registry.getLoaded(id)) return;
    await registry.unload(id, "reload").catch((err: unknown) => {
      if (!(isInfernoError(err) && err.code === "MODEL_BUSY")) throw err;
      registry.setKeepAlive(id, 0); // serving requests: it goes once they end (as Ollama's keep_alive 0)
    });
  }
}

/** An unbounded queue with one reader; the producer thins progress, so it stays short. */
class Channel<T> {
  private readonly items: T[] = [];
  private ended = false;
  private error: { err: unknown } | undefined;
  private wake: (() => void) | undefined;

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }

  end(err?: unknown): void {
    this.ended = true;
    if (err !== undefined) this.error = { err };
    this.notify();
  }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      if (this.ended) {
        if (this.error) throw this.error.err;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
