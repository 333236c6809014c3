// Native batches in Redis (config redisUrl), so every replica sees the same batches and counts.
//
// Keys (after the replica set's prefix, `inferno:` by default):
//   batch:<id>           hash: model, params, webhook_url, webhook_secret, status, total, created_ms,
//                        completed_ms, owner, usage_key, done, error (counters moved with each result)
//   batch:<id>:items     list, one JSON `{id, request}` per item, index = seq
//   batch:<id>:results   hash item id -> JSON `{status: "done"|"error", result|error, replica, ms}`
//   batch:<id>:runs      hash item id -> how many times a replica started it (re-runs after a crash show)
//   batches              sorted set of batch ids by creation time (and batches:owner:<owner> per owner)
//   batches:notify       set of batches that ended (or were cancelled) and whose batch.complete or
//                        OpenAI output files are not done yet
//   batches:unqueued     sorted set of batches whose item jobs may not all be queued yet (by creation time)
// Exactly once: `storeResult` is one Lua script that writes an item's result only if it has none
// (HEXISTS), moves the counters, and, when that was the batch's last item, turns the batch completed
// (or failed) from queued/running and adds it to `batches:notify`, all atomically. A second run of the
// same item (a stalled job recovered while its first run was still going, say) finds the result there
// and writes nothing. An item's request never changes once stored, so a re-run computes the same thing.
import type { Redis } from "ioredis";
import type { Batch, BatchItem, BatchStatus, ItemCounts, ItemRequest, NewBatch } from "./batch-store.js";
import { newBatchId } from "./batch-store.js";

const STORE_RESULT = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
local failed = tonumber(redis.call('HGET', KEYS[1], 'error') or '0')
local status = redis.call('HGET', KEYS[1], 'status')
if done + failed >= total and (status == 'queued' or status == 'running') then
  redis.call('HSET', KEYS[1], 'status', done > 0 and 'completed' or 'failed', 'completed_ms', ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[5])
  return 2
end
return 1`;

// Only an active batch changes: cancelled stays cancelled, ended stays ended. Returns 1 when it changed.
// A cancelled batch goes to `batches:notify` too (its OpenAI files are written from there).
const SET_STATUS = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if ARGV[1] == 'running' then
  if status ~= 'queued' then return 0 end
  redis.call('HSET', KEYS[1], 'status', 'running')
  return 1
end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'completed_ms', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`;

type Scripts = Redis & {
  inferno_batch_store(batch: string, results: string, notify: string, itemId: string, json: string, field: string, now: number, id: string): Promise<number>;
  inferno_batch_status(batch: string, notify: string, status: string, now: number, id: string): Promise<number>;
};

/** Outcome of `storeResult`: not stored (already there), stored, or stored and the batch ended with it. */
export type StoreOutcome = "duplicate" | "stored" | "finished";

/** One item job's payload: which item of which batch. */
export interface ItemRef {
  batchId: string;
  itemId: string;
  seq: number;
}

/** Batches and their results in Redis; every method is a few commands on `client` (see the top of the file). */
export class RedisBatchStore {
  private readonly r: Scripts;

  constructor(client: Redis, private readonly prefix: string, private readonly replicaId: string) {
    this.r = client as Scripts;
    if (!("inferno_batch_store" in client)) {
      client.defineCommand("inferno_batch_store", { numberOfKeys: 3, lua: STORE_RESULT });
      client.defineCommand("inferno_batch_status", { numberOfKeys: 2, lua: SET_STATUS });
    }
  }

  key(...parts: string[]): string {
    return `${this.prefix}${parts.join(":")}`;
  }

  /** Writes the batch, its items and its index entries in one MULTI; its item jobs are queued next. */
  async create(input: NewBatch, now = Date.now()): Promise<{ batch: Batch; refs: ItemRef[] }> {
    const id = newBatchId();
    const multi = this.r.multi();
    multi.hset(this.key("batch", id), {
      model: input.model, params: JSON.stringify(input.params), webhook_url: input.webhookUrl ?? "", webhook_secret: input.webhookSecret ?? "",
      status: "queued", total: input.items.length, created_ms: now, completed_ms: "", owner: input.owner, usage_key: input.usageKey ?? "",
      done: 0, error: 0,
    });
    multi.rpush(this.key("batch", id, "items"), ...input.items.map(({ id: itemId, ...request }) => JSON.stringify({ id: itemId, request })));
    multi.zadd(this.key("batches"), now, id);
    multi.zadd(this.key("batches", "owner", input.owner), now, id);
    multi.zadd(this.key("batches", "unqueued"), now, id);
    await multi.exec();
    const refs = input.items.map((item, seq) => ({ batchId: id, itemId: item.id, seq }));
    return { batch: (await this.get(id))!, refs };
  }

  async get(id: string): Promise<Batch | undefined> {
    const h = await this.r.hgetall(this.key("batch", id));
    return h.status ? toBatch(id, h) : undefined;
  }

  async list(owner: string | undefined, limit: number): Promise<Batch[]> {
    const ids = await this.r.zrevrange(owner === undefined ? this.key("batches") : this.key("batches", "owner", owner), 0, limit - 1);
    const batches = await Promise.all(ids.map((id) => this.get(id)));
    return batches.filter((b): b is Batch => b !== undefined);
  }

  async counts(id: string): Promise<ItemCounts> {
    const [total, done, error] = (await this.r.hmget(this.key("batch", id), "total", "done", "error")).map((v) => Number(v ?? 0));
    return { pending: total! - done! - error!, running: 0, done: done!, error: error! };
  }

  /** Every item in order, with its outcome and the replica that ran it. */
  async items(id: string): Promise<Array<BatchItem & { replica?: string }>> {
    const [list, results, runs] = await Promise.all([
      this.r.lrange(this.key("batch", id, "items"), 0, -1), this.r.hgetall(this.key("batch", id, "results")), this.r.hgetall(this.key("batch", id, "runs")),
    ]);
    return list.map((json, seq) => {
      const { id: itemId, request } = JSON.parse(json) as { id: string; request: ItemRequest };
      const out = results[itemId] === undefined ? undefined : (JSON.parse(results[itemId]) as StoredOutcome);
      return {
        id: itemId, seq, request, status: out?.status ?? "pending", result: out?.result ?? null, error: out?.error ?? null,
        attempts: Number(runs[itemId] ?? 0),
        ...(out ? { replica: out.replica } : {}),
      };
    });
  }

  /** One item's request, for the worker. */
  async item(ref: ItemRef): Promise<ItemRequest | undefined> {
    const json = await this.r.lindex(this.key("batch", ref.batchId, "items"), ref.seq);
    return json === null ? undefined : (JSON.parse(json) as { request: ItemRequest }).request;
  }

  async hasResult(ref: ItemRef): Promise<boolean> {
    return (await this.r.hexists(this.key("batch", ref.batchId, "results"), ref.itemId)) === 1;
  }

  /** Stores an item's one outcome (see the top of the file). */
  async storeResult(ref: ItemRef, outcome: { result: Record<string, unknown> } | { error: { code: string; message: string } }, now = Date.now()): Promise<StoreOutcome> {
    const status = "result" in outcome ? "done" : "error";
    const json = JSON.stringify({ status, ...outcome, replica: this.replicaId, ms: now });
    const k = (...p: string[]) => this.key("batch", ref.batchId, ...p);
    const n = await this.r.inferno_batch_store(k(), k("results"), this.key("batches", "notify"), ref.itemId, json, status, now, ref.batchId);
    return n === 0 ? "duplicate" : n === 2 ? "finished" : "stored";
  }

  /** Records that a replica starts the item, and marks a queued batch running. */
  async started(ref: ItemRef): Promise<void> {
    await this.r.hincrby(this.key("batch", ref.batchId, "runs"), ref.itemId, 1);
    await this.r.inferno_batch_status(this.key("batch", ref.batchId), this.key("batches", "notify"), "running", Date.now(), ref.batchId);
  }

  /** Cancels a queued or running batch; returns it as it is afterwards. */
  async cancel(id: string, now = Date.now()): Promise<Batch | undefined> {
    await this.r.inferno_batch_status(this.key("batch", id), this.key("batches", "notify"), "cancelled", now, id);
    return this.get(id);
  }

  /** Batches that ended and whose batch.complete may not be queued yet. */
  finishedUnnotified(): Promise<string[]> {
    return this.r.smembers(this.key("batches", "notify"));
  }

  async notified(id: string): Promise<void> {
    await this.r.srem(this.key("batches", "notify"), id);
  }

  /** Batches created before `before` whose item jobs may not all be queued (the creating replica died between). */
  unqueued(before: number): Promise<string[]> {
    return this.r.zrangebyscore(this.key("batches", "unqueued"), 0, before);
  }

  async queued(id: string): Promise<void> {
    await this.r.zrem(this.key("batches", "unqueued"), id);
  }

  /** Every item of a batch as job refs (to queue them again). */
  async refs(id: string): Promise<ItemRef[]> {
    const list = await this.r.lrange(this.key("batch", id, "items"), 0, -1);
    return list.map((json, seq) => ({ batchId: id, itemId: (JSON.parse(json) as { id: string }).id, seq }));
  }
}

interface StoredOutcome {
  status: "done" | "error";
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
  replica: string;
}

function toBatch(id: string, h: Record<string, string>): Batch {
  return {
    id, model: h.model!, params: JSON.parse(h.params ?? "{}") as Record<string, unknown>, webhookUrl: h.webhook_url || null,
    webhookSecret: h.webhook_secret || null, status: h.status as BatchStatus, total: Number(h.total), createdMs: Number(h.created_ms),
    completedMs: h.completed_ms ? Number(h.completed_ms) : null, owner: h.owner!, usageKey: h.usage_key || null,
  };
}
