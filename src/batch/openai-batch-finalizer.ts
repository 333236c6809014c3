// Ends OpenAI batches: once the engine has ended a batch (every item finished, or cancelled) and none
// of its items is still running, writes its output file (one line per successful item) and its error
// file (failed items, and the unfinished items of a cancelled or expired batch), then records both in
// one transaction with the batch's `finalized_ms`. Until then the batch shows `finalizing` or
// `cancelling`.
//
// Crash safety: the files' bytes are complete before their rows exist (file-store.ts), and the rows and
// the batch's file ids commit together; a crash before that commit leaves the batch unfinalized, and
// `sweep()` (at start-up and then periodically) finalizes it again from the stored results, which
// never change once stored. The sweep also expires active batches whose completion window has passed
// and catches batches ended another way (a cancel through `DELETE /batch/{id}`).
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import type { Logger } from "../core/logger.js";
import { errorCatalogue, type ErrorCode } from "../errors/catalogue.js";
import type { FileStore, FileWriter } from "../files/file-store.js";
import type { BatchItem, BatchStore } from "./batch-store.js";
import type { BatchWorker } from "./batch-worker.js";
import type { BatchUsage, OpenaiBatch, OpenaiBatchStore } from "./openai-batch-store.js";

const PAGE = 500;

export interface FinalizerOptions {
  db: Database.Database;
  store: BatchStore;
  batches: OpenaiBatchStore;
  files: FileStore;
  worker: BatchWorker;
  log: Logger;
}

const requestId = () => `batch_req_${randomBytes(12).toString("base64url")}`;

/** One line of the output or error file for an item, or undefined when it belongs in neither. */
export function lineOf(b: OpenaiBatch, item: BatchItem): { file: "output" | "error"; line: Record<string, unknown> } | undefined {
  const base = { id: requestId(), custom_id: item.id };
  if (item.status === "done") {
    return { file: "output", line: { ...base, response: { status_code: 200, request_id: base.id, body: item.result }, error: null } };
  }
  if (item.status === "error") {
    const e = item.error!;
    const entry = errorCatalogue[e.code as ErrorCode] ?? errorCatalogue.INTERNAL_ERROR;
    const error = { message: e.message, type: entry.type, param: null, code: e.code.toLowerCase() };
    return { file: "error", line: { ...base, response: { status_code: entry.status, request_id: base.id, body: { error } }, error: { code: error.code, message: e.message } } };
  }
  if (b.engineStatus !== "cancelled") return undefined;
  const [code, message] = b.expiredMs !== null
    ? ["batch_expired", "this request could not be executed before the completion window expired"]
    : ["batch_cancelled", "this request was not executed because the batch was cancelled"];
  return { file: "error", line: { ...base, response: null, error: { code, message } } };
}

/** Writes ended OpenAI batches' output and error files, once each. */
export class OpenaiBatchFinalizer {
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: FinalizerOptions) {}

  /** Finalizes the batch if it has ended and is not finalized yet; concurrent calls share one run. */
  finalize(id: string): Promise<void> {
    const running = this.inFlight.get(id);
    if (running) return running;
    const run = this.run(id)
      .catch((err: unknown) => this.opts.log.error({ err, batch: id }, "could not write the batch's output files (will retry)"))
      .finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, run);
    return run;
  }

  /** Expires overdue batches, then finalizes every ended batch that is not finalized yet. */
  sweep(now = Date.now()): void {
    const { db, store, batches, worker } = this.opts;
    for (const id of batches.overdue(now)) {
      db.transaction(() => {
        batches.markExpired(id, now);
        store.cancel(id, now);
      }).immediate();
      worker.cancel(id);
    }
    for (const id of batches.unfinalized()) void this.finalize(id);
  }

  /** Sweeps now and every `intervalMs`. */
  start(intervalMs: number): void {
    this.sweep();
    this.timer = setInterval(() => {
      try {
        this.sweep();
      } catch (err) {
        this.opts.log.error({ err }, "could not sweep OpenAI batches (will retry)");
      }
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops sweeping and waits for the finalizations under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private async run(id: string): Promise<void> {
    const { db, store, batches, files, worker } = this.opts;
    await worker.settled(id);
    const b = batches.get(id);
    if (!b || b.finalizedMs !== null || b.engineStatus === "queued" || b.engineStatus === "running") return;
    const writers: Partial<Record<"output" | "error", FileWriter>> = {};
    const usage: BatchUsage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
    try {
      for (let after = -1; ; ) {
        const page = store.itemsPage(id, after, PAGE);
        if (page.length === 0) break;
        after = page.at(-1)!.seq;
        const chunks = fileChunks(b, page, usage);
        for (const kind of ["output", "error"] as const) {
          if (chunks[kind].length === 0) continue;
          writers[kind] ??= await files.create();
          await writers[kind].write(chunks[kind].join(""));
        }
      }
      const sizes = { output: await writers.output?.finish(), error: await writers.error?.finish() };
      db.transaction(() => {
        for (const kind of ["output", "error"] as const) {
          const w = writers[kind];
          if (w) files.insert({ id: w.id, filename: `${id}_${kind}.jsonl`, bytes: sizes[kind]!, purpose: "batch_output", owner: b.owner });
        }
        if (!batches.finalize(id, { output: writers.output?.id ?? null, error: writers.error?.id ?? null, usage })) {
          throw new Error("the batch was finalized meanwhile");
        }
      }).immediate();
    } catch (err) {
      await Promise.all(Object.values(writers).map((w) => w.abort()));
      throw err;
    }
  }
}

/** The output- and error-file lines of finished items, as JSONL text per file; output usage added to `usage`. */
export function fileChunks(b: OpenaiBatch, items: Iterable<BatchItem>, usage: BatchUsage): Record<"output" | "error", string[]> {
  const chunks: Record<"output" | "error", string[]> = { output: [], error: [] };
  for (const item of items) {
    const out = lineOf(b, item);
    if (!out) continue;
    chunks[out.file].push(`${JSON.stringify(out.line)}\n`);
    if (out.file === "output") addUsage(usage, item.result);
  }
  return chunks;
}

export function addUsage(total: BatchUsage, body: Record<string, unknown> | null): void {
  const u = body?.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
  const input = u?.prompt_tokens ?? 0;
  const output = u?.completion_tokens ?? 0;
  total.input_tokens += input;
  total.output_tokens += output;
  total.total_tokens += input + output;
}
