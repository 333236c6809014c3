// OpenAI batches (`/v1/batches`) shared by replicas (config redisUrl): what openai-batch-store.ts keeps
// in SQLite, in Redis, on top of an engine batch in redis-batch-store.ts (whose items the BullMQ worker
// runs like any other).
//   openai-batch:<id>   hash: endpoint, input_file_id, completion_window, metadata, expires_ms,
//                       cancelling_ms, expired_ms, finalized_ms, output_file_id, error_file_id, usage
//   openai-batches      sorted set of ids by creation time
//   openai-batches:due  sorted set of the active ones by expiry time (expires_ms), for the expiry sweep
// Finalizing (writing the output and error files) happens once the engine batch has ended, from
// `batches:notify` (redis-batch-worker.ts: the replica that ended it, or any replica's sweep if that
// one died): the files are written to the shared volume and recorded, then one Lua script sets
// `finalized_ms` and the file ids only if no replica did it first; a replica that lost that race removes
// its files. The completion window is enforced by `expireOverdue` (every replica runs it periodically:
// HSETNX makes the first one's time stick), which marks a batch still queued or running at its
// `expires_ms` expired and cancels its engine batch; its files are then written as for a cancel, the
// unfinished items with `batch_expired`.
import type { Redis } from "ioredis";
import type { FileWriter } from "../files/file-store.js";
import type { RedisFileStore } from "../files/redis-file-store.js";
import type { Batch } from "./batch-store.js";
import { fileChunks } from "./openai-batch-finalizer.js";
import type { BatchUsage, OpenaiBatch } from "./openai-batch-store.js";
import type { RedisBatchStore } from "./redis-batch-store.js";

const FINALIZE = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'finalized_ms') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'finalized_ms', ARGV[1], 'output_file_id', ARGV[2], 'error_file_id', ARGV[3], 'usage', ARGV[4])
return 1`;

type Scripts = Redis & { inferno_openai_finalize(key: string, now: number, output: string, error: string, usage: string): Promise<number> };

export interface NewOpenaiBatch {
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  expiresMs: number;
}

export class RedisOpenaiBatches {
  private readonly r: Scripts;

  constructor(client: Redis, private readonly prefix: string, private readonly engine: RedisBatchStore, private readonly files: RedisFileStore) {
    this.r = client as Scripts;
    if (!("inferno_openai_finalize" in client)) client.defineCommand("inferno_openai_finalize", { numberOfKeys: 1, lua: FINALIZE });
  }

  private key(id?: string): string {
    return id === undefined ? `${this.prefix}openai-batches` : `${this.prefix}openai-batch:${id}`;
  }

  private dueKey(): string {
    return `${this.prefix}openai-batches:due`;
  }

  /** Records the OpenAI side of an engine batch (before its items are queued, so it exists when the batch ends). */
  async insert(engine: Batch, b: NewOpenaiBatch): Promise<void> {
    await this.r.multi()
      .hset(this.key(engine.id), {
        endpoint: b.endpoint, input_file_id: b.inputFileId, completion_window: b.completionWindow,
        metadata: b.metadata === null ? "" : JSON.stringify(b.metadata), expires_ms: b.expiresMs,
      })
      .zadd(this.key(), engine.createdMs, engine.id)
      .zadd(this.dueKey(), b.expiresMs, engine.id)
      .exec();
  }

  /**
   * Expires the batches whose completion window has passed by `now` while still queued or running: marks
   * them expired (once, whichever replica comes first) and cancels their engine batch, whose end then
   * writes the files. Returns the ids it expired. Batches that ended in time just leave the due set.
   */
  async expireOverdue(now = Date.now()): Promise<string[]> {
    const expired: string[] = [];
    for (const id of await this.r.zrangebyscore(this.dueKey(), "-inf", now, "LIMIT", 0, 1000)) {
      const engine = await this.engine.get(id);
      if (engine && (engine.status === "queued" || engine.status === "running")) {
        if ((await this.r.hsetnx(this.key(id), "expired_ms", now)) === 1) expired.push(id);
        await this.engine.cancel(id, now);
      }
      await this.r.zrem(this.dueKey(), id);
    }
    return expired;
  }

  async get(id: string): Promise<OpenaiBatch | undefined> {
    const [h, e] = await Promise.all([this.r.hgetall(this.key(id)), this.engine.get(id)]);
    if (!h.endpoint || !e) return undefined;
    const num = (v: string | undefined) => (v ? Number(v) : null);
    return {
      id, endpoint: h.endpoint, inputFileId: h.input_file_id!, completionWindow: h.completion_window!,
      metadata: h.metadata ? (JSON.parse(h.metadata) as Record<string, string>) : null, expiresMs: Number(h.expires_ms),
      cancellingMs: num(h.cancelling_ms), expiredMs: num(h.expired_ms), finalizedMs: num(h.finalized_ms), outputFileId: h.output_file_id || null,
      errorFileId: h.error_file_id || null, usage: h.usage ? (JSON.parse(h.usage) as BatchUsage) : null, engineStatus: e.status,
      createdMs: e.createdMs, endedMs: e.completedMs, owner: e.owner, total: e.total,
    };
  }

  /** Newest first, after the batch `after` (a cursor); `owner` undefined lists everyone's. */
  async list(owner: string | undefined, after: string | undefined, limit: number): Promise<OpenaiBatch[]> {
    const ids = await this.r.zrevrange(this.key(), 0, -1);
    const out: OpenaiBatch[] = [];
    for (const id of ids.slice(after === undefined ? 0 : ids.indexOf(after) + 1)) {
      const b = await this.get(id);
      if (!b || (owner !== undefined && b.owner !== owner)) continue;
      out.push(b);
      if (out.length >= limit) break;
    }
    return out;
  }

  async markCancelling(id: string, now = Date.now()): Promise<void> {
    await this.r.hsetnx(this.key(id), "cancelling_ms", now);
  }

  /** Writes an ended batch's output and error files once (see the top of the file); a no-op otherwise. */
  async finalize(id: string): Promise<void> {
    const b = await this.get(id);
    if (!b || b.finalizedMs !== null || b.engineStatus === "queued" || b.engineStatus === "running") return;
    const writers: Partial<Record<"output" | "error", FileWriter>> = {};
    const usage: BatchUsage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
    const recorded: string[] = [];
    try {
      const chunks = fileChunks(b, await this.engine.items(id), usage);
      for (const kind of ["output", "error"] as const) {
        if (chunks[kind].length === 0) continue;
        const w = (writers[kind] = await this.files.create());
        await w.write(chunks[kind].join(""));
        const bytes = await w.finish();
        await this.files.insert({ id: w.id, filename: `${id}_${kind}.jsonl`, bytes, purpose: "batch_output", owner: b.owner });
        recorded.push(w.id);
      }
      const won = await this.r.inferno_openai_finalize(this.key(id), Date.now(), writers.output?.id ?? "", writers.error?.id ?? "", JSON.stringify(usage));
      if (won === 0) throw new Error("finalized by another replica");
    } catch (err) {
      await Promise.all(Object.values(writers).map((w) => w.abort()));
      await Promise.all(recorded.map((fileId) => this.files.delete(fileId).catch(() => false)));
      if ((err as Error).message !== "finalized by another replica") throw err;
    }
  }
}
