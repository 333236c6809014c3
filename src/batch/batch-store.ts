// Batch jobs in the data dir's SQLite database (component "batch").
//
// A batch is one row in `batches` and one row per request in `batch_items`. An item moves
//   pending --claim--> running --complete--> done
//                              --fail-----> error
//                              --release--> pending   (aborted: cancel, server stop)
// and every move is one UPDATE guarded by the status it leaves, inside a transaction. So:
// - a result is stored at most once: `complete` only changes a row that is still `running`, and a
//   `done` row is never claimed again (claims take `pending` rows only);
// - a result is stored at least once: a crash (kill -9 included) leaves the items that were running
//   `running` with no result, and `requeueRunning` at start-up puts them back to `pending`.
// WAL with synchronous=NORMAL keeps every committed transaction across a process crash (an OS crash
// or power cut may lose the last ones, which then simply run again). `attempts` counts claims, so
// tests (and operators) can see which items were re-run after a crash.
// The batch row turns `completed` (or `failed`, when no item succeeded) in the same transaction that
// finishes its last item, and the caller's `onFinished` runs inside it too: whatever it writes (the
// batch.complete webhook delivery) is committed together with the last result, or not at all.
// An item is either a prompt run with the batch's native params (`/batch`) or a whole request body for
// one OpenAI endpoint with its own model (`/v1/batches`); both move through the same states.
// One server per data dir: a second one would requeue the first one's running items.
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { migrate } from "../store/database.js";

const MIGRATIONS = [
  `CREATE TABLE batches (
     id TEXT PRIMARY KEY,
     model TEXT NOT NULL,
     params TEXT NOT NULL,
     webhook_url TEXT,
     webhook_secret TEXT,
     status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
     total INTEGER NOT NULL,
     created_ms INTEGER NOT NULL,
     completed_ms INTEGER,
     owner TEXT NOT NULL
   ) STRICT;
   CREATE INDEX batches_status ON batches (status, created_ms);
   CREATE INDEX batches_owner ON batches (owner, created_ms);
   CREATE TABLE batch_items (
     batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
     item_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     request TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'error')),
     result TEXT,
     error TEXT,
     attempts INTEGER NOT NULL DEFAULT 0,
     started_ms INTEGER,
     finished_ms INTEGER,
     PRIMARY KEY (batch_id, item_id)
   ) STRICT;
   CREATE INDEX batch_items_next ON batch_items (batch_id, status, seq);`,
  // The rate-limit key of the submitting request, so the owner's tokens per minute pay for the items.
  `ALTER TABLE batches ADD COLUMN usage_key TEXT;`,
];

export type BatchStatus = "queued" | "running" | "completed" | "cancelled" | "failed";
export type ItemStatus = "pending" | "running" | "done" | "error";

/** A batch as stored; `params` are the shared native sampling fields as the client sent them. */
export interface Batch {
  id: string;
  model: string;
  params: Record<string, unknown>;
  webhookUrl: string | null;
  webhookSecret: string | null;
  status: BatchStatus;
  total: number;
  createdMs: number;
  completedMs: number | null;
  owner: string;
  /** The rate-limit key charged for its items' tokens; null for batches stored before there was one. */
  usageKey: string | null;
}

/** What one item asks for: a prompt (with the batch's params), or an OpenAI endpoint's request body. */
export type ItemRequest = { prompt: string } | { endpoint: string; model: string; body: Record<string, unknown> };

/** One request of a batch with its outcome (`result` for done items, `error` for failed ones). */
export interface BatchItem {
  id: string;
  /** Position in the batch, from 0. */
  seq: number;
  request: ItemRequest;
  status: ItemStatus;
  /** A prompt item's `{text, finish_reason, usage}`, or an endpoint item's response body. */
  result: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  attempts: number;
}

/** The next item to run, with what the worker needs to build its request. */
export interface ClaimableItem {
  batchId: string;
  itemId: string;
  /** The item's own model for endpoint items, else the batch's. */
  model: string;
  params: Record<string, unknown>;
  request: ItemRequest;
  /** The batch's `usageKey`. */
  usageKey: string | null;
}

export type ItemCounts = Record<ItemStatus, number>;

/** Callbacks run inside the transaction that finishes an item, so what they write commits with it. */
export interface FinishHooks {
  onStored?: () => void;
  onFinished?: (batch: Batch) => void;
}

interface BatchRow {
  id: string;
  model: string;
  params: string;
  webhook_url: string | null;
  webhook_secret: string | null;
  status: BatchStatus;
  total: number;
  created_ms: number;
  completed_ms: number | null;
  owner: string;
  usage_key: string | null;
}

interface ItemRow {
  item_id: string;
  seq: number;
  request: string;
  status: ItemStatus;
  result: string | null;
  error: string | null;
  attempts: number;
}

const toBatch = (r: BatchRow): Batch => ({
  id: r.id, model: r.model, params: JSON.parse(r.params) as Record<string, unknown>, webhookUrl: r.webhook_url,
  webhookSecret: r.webhook_secret, status: r.status, total: r.total, createdMs: r.created_ms, completedMs: r.completed_ms, owner: r.owner,
  usageKey: r.usage_key,
});

export const newBatchId = () => `batch_${randomBytes(12).toString("base64url")}`;

export interface NewBatch {
  model: string;
  params: Record<string, unknown>;
  webhookUrl?: string | undefined;
  webhookSecret?: string | undefined;
  owner: string;
  /** The submitting request's rate-limit key (src/limits/rate-limit.ts `limitKey`). */
  usageKey?: string | undefined;
  items: ReadonlyArray<{ id: string } & ItemRequest>;
}

const toItem = (r: ItemRow): BatchItem => ({
  id: r.item_id,
  seq: r.seq,
  request: JSON.parse(r.request) as ItemRequest,
  status: r.status,
  result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
  error: r.error === null ? null : (JSON.parse(r.error) as BatchItem["error"]),
  attempts: r.attempts,
});

/** Batches and their items; every method is one synchronous transaction. */
export class BatchStore {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    migrate(db, "batch", MIGRATIONS);
    this.stmt = {
      insertBatch: db.prepare(
        `INSERT INTO batches (id, model, params, webhook_url, webhook_secret, status, total, created_ms, owner, usage_key)
         VALUES (@id, @model, @params, @webhook_url, @webhook_secret, 'queued', @total, @created_ms, @owner, @usage_key)`,
      ),
      insertItem: db.prepare("INSERT INTO batch_items (batch_id, item_id, seq, request, status) VALUES (?, ?, ?, ?, 'pending')"),
      get: db.prepare<[string], BatchRow>("SELECT * FROM batches WHERE id = ?"),
      list: db.prepare<[{ owner: string | null; limit: number }], BatchRow>(
        "SELECT * FROM batches WHERE (@owner IS NULL OR owner = @owner) ORDER BY created_ms DESC, rowid DESC LIMIT @limit",
      ),
      counts: db.prepare<[string], { status: ItemStatus; n: number }>("SELECT status, count(*) AS n FROM batch_items WHERE batch_id = ? GROUP BY status"),
      items: db.prepare<[string], ItemRow>("SELECT * FROM batch_items WHERE batch_id = ? ORDER BY seq"),
      itemsPage: db.prepare<[string, number, number], ItemRow>("SELECT * FROM batch_items WHERE batch_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
      active: db.prepare<[], BatchRow>("SELECT * FROM batches WHERE status IN ('queued', 'running') ORDER BY created_ms, rowid"),
      nextItem: db.prepare<[string], { item_id: string; request: string }>(
        "SELECT item_id, request FROM batch_items WHERE batch_id = ? AND status = 'pending' ORDER BY seq LIMIT 1",
      ),
      claim: db.prepare(
        "UPDATE batch_items SET status = 'running', attempts = attempts + 1, started_ms = ? WHERE batch_id = ? AND item_id = ? AND status = 'pending'",
      ),
      markRunning: db.prepare("UPDATE batches SET status = 'running' WHERE id = ? AND status = 'queued'"),
      finishItem: db.prepare(
        "UPDATE batch_items SET status = ?, result = ?, error = ?, finished_ms = ? WHERE batch_id = ? AND item_id = ? AND status = 'running'",
      ),
      release: db.prepare("UPDATE batch_items SET status = 'pending', started_ms = NULL WHERE batch_id = ? AND item_id = ? AND status = 'running'"),
      unfinished: db.prepare<[string], { n: number }>(
        "SELECT count(*) AS n FROM batch_items WHERE batch_id = ? AND status IN ('pending', 'running')",
      ),
      anyDone: db.prepare<[string], { n: number }>("SELECT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = ? AND status = 'done') AS n"),
      finishBatch: db.prepare("UPDATE batches SET status = ?, completed_ms = ? WHERE id = ? AND status IN ('queued', 'running')"),
      requeue: db.prepare("UPDATE batch_items SET status = 'pending', started_ms = NULL WHERE status = 'running'"),
    };
  }

  create(input: NewBatch, now = Date.now()): Batch {
    const id = newBatchId();
    this.db.transaction(() => {
      this.stmt.insertBatch.run({
        id, model: input.model, params: JSON.stringify(input.params), webhook_url: input.webhookUrl ?? null,
        webhook_secret: input.webhookSecret ?? null, total: input.items.length, created_ms: now, owner: input.owner,
        usage_key: input.usageKey ?? null,
      });
      input.items.forEach(({ id: itemId, ...request }, seq) => this.stmt.insertItem.run(id, itemId, seq, JSON.stringify(request)));
    }).immediate();
    return this.get(id)!;
  }

  get(id: string): Batch | undefined {
    const row = this.stmt.get.get(id);
    return row && toBatch(row);
  }

  /** Newest first; `owner` undefined lists everyone's. */
  list(owner: string | undefined, limit: number): Batch[] {
    return this.stmt.list.all({ owner: owner ?? null, limit }).map(toBatch);
  }

  counts(id: string): ItemCounts {
    const counts: ItemCounts = { pending: 0, running: 0, done: 0, error: 0 };
    for (const { status, n } of this.stmt.counts.all(id)) counts[status] = n;
    return counts;
  }

  items(id: string): BatchItem[] {
    return this.stmt.items.all(id).map(toItem);
  }

  /** Up to `limit` items after position `afterSeq` (-1 for the first page), in order: for batches too big to read at once. */
  itemsPage(id: string, afterSeq: number, limit: number): BatchItem[] {
    return this.stmt.itemsPage.all(id, afterSeq, limit).map(toItem);
  }

  /** At start-up: items a crash left running have no result, so they run again. Returns how many. */
  requeueRunning(): number {
    return this.stmt.requeue.run().changes;
  }

  /**
   * The oldest active batches' next pending items, oldest batch first, one per batch (FIFO across
   * batches: a later batch only runs while earlier ones have nothing pending).
   */
  nextItems(limit: number): ClaimableItem[] {
    const out: ClaimableItem[] = [];
    for (const b of this.stmt.active.all()) {
      const next = this.stmt.nextItem.get(b.id);
      if (next) {
        const params = JSON.parse(b.params) as Record<string, unknown>;
        const request = JSON.parse(next.request) as ItemRequest;
        const model = "model" in request ? request.model : b.model;
        out.push({ batchId: b.id, itemId: next.item_id, model, params, request, usageKey: b.usage_key });
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** Takes a pending item for running; false when it is no longer pending. */
  claim(batchId: string, itemId: string, now = Date.now()): boolean {
    return this.db.transaction(() => {
      if (this.stmt.claim.run(now, batchId, itemId).changes === 0) return false;
      this.stmt.markRunning.run(batchId);
      return true;
    }).immediate();
  }

  /**
   * Stores a running item's one result. False when it was not running (nothing is written then).
   * `hooks` run inside the transaction: `onStored` after the item's row, `onFinished` when it was the batch's last.
   */
  complete(batchId: string, itemId: string, result: Record<string, unknown>, hooks: FinishHooks = {}, now = Date.now()): boolean {
    return this.finish(batchId, itemId, "done", JSON.stringify(result), null, hooks, now);
  }

  /** Records a running item's error, as `complete` does a result. */
  fail(batchId: string, itemId: string, error: NonNullable<BatchItem["error"]>, hooks: FinishHooks = {}, now = Date.now()): boolean {
    return this.finish(batchId, itemId, "error", null, JSON.stringify(error), hooks, now);
  }

  /** A running item that was aborted goes back to pending (it has no result). */
  release(batchId: string, itemId: string): void {
    this.stmt.release.run(batchId, itemId);
  }

  /** Cancels a queued or running batch; returns the batch as it is afterwards (undefined: no such batch). */
  cancel(id: string, now = Date.now()): Batch | undefined {
    this.stmt.finishBatch.run("cancelled", now, id);
    return this.get(id);
  }

  private finish(
    batchId: string, itemId: string, status: "done" | "error", result: string | null, error: string | null,
    hooks: FinishHooks, now: number,
  ): boolean {
    return this.db.transaction(() => {
      if (this.stmt.finishItem.run(status, result, error, now, batchId, itemId).changes === 0) return false;
      hooks.onStored?.();
      if (this.stmt.unfinished.get(batchId)!.n === 0) {
        const outcome = this.stmt.anyDone.get(batchId)!.n > 0 ? "completed" : "failed";
        // A cancelled batch stays cancelled; only an active one turns completed or failed (once).
        if (this.stmt.finishBatch.run(outcome, now, batchId).changes === 1) hooks.onFinished?.(this.get(batchId)!);
      }
      return true;
    }).immediate();
  }
}
