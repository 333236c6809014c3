// Runs batch items from the store beside live traffic.
//
// Priority: live requests go first, by never letting batch work take the place they need.
// - The worker starts an item on a loaded model only when no live request is waiting for a sequence
//   (`queued === 0`) and a sequence is free beyond one kept for live traffic (batch items use at most
//   `parallel - 1` of a model's sequences; all of one when `parallel` is 1). So a live request finds
//   a free sequence at once, or, with `parallel` 1, waits for one batch item, never for the batch.
// - At most `batchConcurrency` (default 1) items run at once in all; each holds one sequence, decoded
//   together with the live ones by node-llama-cpp (the cost to live traffic is a slightly larger batch
//   per decode step, not a wait).
// - Items whose model is not loaded yet may start (one at a time per model), which loads it.
// The worker is woken by a submission, by any generation finishing (a sequence came free), and by a
// 250 ms poll (a live request that left the queue, say). Batches run oldest first; a batch whose model
// is busy does not hold up another batch on another model.
//
// Cancel aborts the batch's running items; an aborted item goes back to pending (a partial
// generation is never stored), and a cancelled batch's pending items are never claimed. `stop()`
// (server closing) aborts everything the same way, so the next start runs those items again; while
// the server drains before that, `pause()` lets the running items finish but claims no new ones.
//
// A prompt item runs as `POST /inference` would; an endpoint item (from `/v1/batches`) runs as its
// OpenAI route would without streaming, and its stored result is that route's response body.
import { AsyncResource } from "node:async_hooks";
import { collectGeneration, type GenerationResult } from "../core/generation.js";
import type { Logger } from "../core/logger.js";
import { toGenerateRequest, usageOfOne, type GenerationLimits, type PromptBody } from "../dialects/native.js";
import { runBatchRequest } from "../dialects/openai/batch-requests.js";
import { toInfernoError } from "../errors/error-handler.js";
import type { UsageContext } from "../limits/usage-context.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { GgufTextModel } from "../runtimes/llama/gguf-text-model.js";
import { startGeneration } from "../services/generation.js";
import type { Batch, BatchStore, ClaimableItem } from "./batch-store.js";

/** What the worker reports, synchronously, inside the transaction that stores an item's outcome. */
export interface BatchEvents {
  itemCompleted(batch: { id: string; model: string }, itemId: string, result: { promptTokens: number; completionTokens: number; totalMs: number; finishReason: string }): void;
  batchFinished(batch: Batch): void;
}

export interface BatchWorkerOptions {
  store: BatchStore;
  registry: ModelRegistry;
  limits: GenerationLimits;
  /** Items running at once, over all batches. */
  concurrency: number;
  log: Logger;
  events?: BatchEvents;
  pollMs?: number;
  /** Items run as their owner's usage here, so the rate limiter charges their tokens to the owner. */
  usage?: UsageContext;
}

interface Running {
  batchId: string;
  model: string;
  controller: AbortController;
  done: Promise<void>;
}

export class BatchWorker {
  private readonly running = new Map<string, Running>();
  private readonly listeners: Array<Partial<BatchEvents>> = [];
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private stopped = true;
  private unobserve: (() => void) | undefined;
  // Bound to the context the worker was made in (no request's): a wake-up from a request handler must
  // not make batch generations look like that request's to async-context observers (traces, limits).
  private readonly pumpDetached = AsyncResource.bind(() => {
    this.scheduled = false;
    this.pump();
  });

  constructor(private readonly opts: BatchWorkerOptions) {
    if (opts.events) this.listeners.push(opts.events);
  }

  /** Adds a listener for item and batch events (called inside the storing transactions, as `events`). */
  listen(events: Partial<BatchEvents>): void {
    this.listeners.push(events);
  }

  /** Requeues what a crash left running, then starts pulling items. */
  start(): void {
    const requeued = this.opts.store.requeueRunning();
    if (requeued > 0) this.opts.log.info({ items: requeued }, "batch items interrupted by a restart will run again");
    this.stopped = false;
    this.unobserve = this.opts.registry.observe((event) => {
      if (event.kind === "generation") this.wake();
    });
    this.timer = setInterval(() => this.wake(), this.opts.pollMs ?? 250);
    this.timer.unref();
    this.wake();
  }

  wake(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.pumpDetached);
  }

  /** Aborts the batch's running items (they return to pending; the batch is already cancelled in the store). */
  cancel(batchId: string): void {
    for (const r of this.running.values()) if (r.batchId === batchId) r.controller.abort(new Error("batch cancelled"));
  }

  /** Resolves once none of the batch's items is running (after a cancel, their outcomes are settled). */
  async settled(batchId: string): Promise<void> {
    await Promise.allSettled([...this.running.values()].filter((r) => r.batchId === batchId).map((r) => r.done));
  }

  /** Stops claiming items (the server is draining); the running ones go on until they finish or `stop()`. */
  pause(): void {
    this.stopped = true;
  }

  /** Stops pulling items and aborts the running ones, which return to pending. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unobserve?.();
    for (const r of this.running.values()) r.controller.abort(new Error("server stopping"));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private pump(): void {
    try {
      while (!this.stopped && this.running.size < this.opts.concurrency) {
        const next = this.opts.store.nextItems(16).find((c) => this.hasRoom(c.model));
        if (!next || !this.opts.store.claim(next.batchId, next.itemId)) return;
        this.launch(next);
      }
    } catch (err) {
      this.opts.log.error({ err }, "batch worker could not read the queue");
    }
  }

  private hasRoom(model: string): boolean {
    return hasBatchRoom(this.opts.registry, model, [...this.running.values()].filter((r) => r.model === model).length);
  }

  private launch(item: ClaimableItem): void {
    const key = `${item.batchId}\u0000${item.itemId}`;
    const controller = new AbortController();
    const run = () => this.runItem(item, controller.signal);
    const { usage } = this.opts;
    const done = (usage && item.usageKey !== null ? usage.run(item.usageKey, run) : run())
      .catch((err: unknown) => this.opts.log.error({ err, batch: item.batchId, item: item.itemId }, "batch item bookkeeping failed"))
      .finally(() => {
        this.running.delete(key);
        this.wake();
      });
    this.running.set(key, { batchId: item.batchId, model: item.model, controller, done });
  }

  private async runItem(item: ClaimableItem, signal: AbortSignal): Promise<void> {
    const { store, registry, limits } = this.opts;
    const batch = { id: item.batchId, model: item.model };
    const onFinished = (b: Batch) => this.listeners.forEach((l) => l.batchFinished?.(b));
    let stored: Record<string, unknown>;
    let result: GenerationResult | undefined;
    try {
      ({ stored, result } = await runBatchItem(registry, limits, item, signal));
    } catch (err) {
      if (signal.aborted) return store.release(item.batchId, item.itemId);
      const e = toInfernoError(err);
      if (e.status >= 500) this.opts.log.error({ err: e.cause ?? e, batch: item.batchId, item: item.itemId }, "batch item failed");
      store.fail(item.batchId, item.itemId, { code: e.code, message: e.message }, { onFinished });
      return;
    }
    // An abort ends generation early with a partial result: that is not the item's answer.
    if (signal.aborted) return store.release(item.batchId, item.itemId);
    const onStored = () => {
      if (result) for (const l of this.listeners) l.itemCompleted?.(batch, item.itemId, result);
    };
    store.complete(item.batchId, item.itemId, stored, { onStored, onFinished });
  }
}

/**
 * Whether an item on this model may start now without making live requests wait (see the top of the
 * file), given how many of this process's batch items already run on it.
 */
export function hasBatchRoom(registry: ModelRegistry, model: string, mine: number): boolean {
  const loaded = registry.getLoaded(model);
  if (!(loaded instanceof GgufTextModel)) return mine === 0;
  if (loaded.queued > 0) return false;
  const share = Math.max(1, loaded.parallel - 1);
  const liveReserve = loaded.parallel > 1 ? 1 : 0;
  return mine < share && loaded.inFlight < loaded.parallel - liveReserve;
}

/** Runs one item: its stored result, and the generation to report (none for several choices or embeddings). */
export async function runBatchItem(
  registry: ModelRegistry, limits: GenerationLimits, item: Pick<ClaimableItem, "model" | "params" | "request">, signal: AbortSignal,
): Promise<{ stored: Record<string, unknown>; result: GenerationResult | undefined }> {
  const { request } = item;
  if ("prompt" in request) {
    const req = toGenerateRequest(item.model, { ...(item.params as Omit<PromptBody, "prompt">), prompt: request.prompt }, limits);
    const result = await collectGeneration(await startGeneration(registry, { ...req, priority: "batch" }, signal));
    return { stored: { text: result.text, finish_reason: result.finishReason, usage: usageOfOne(result) }, result };
  }
  const out = await runBatchRequest(registry, limits, request.endpoint, request.body, signal);
  // One event per item: an item with several choices (n > 1) or none (embeddings) reports nothing.
  return { stored: out.body, result: out.results.length === 1 ? out.results[0] : undefined };
}
