// Webhook registrations and the delivery queue, in the data dir's database (component "webhooks").
// A delivery row holds the exact body that is sent, written once when the event happens, and the
// secret that signs it: every retry (and a retry after a restart) sends the same bytes under the same
// `webhook-id`, signed afresh with the attempt's timestamp (signature.ts). Deliveries are at least
// once: one in flight when the process dies is still `pending` and is sent again; receivers dedupe by
// the webhook-id. Secrets are kept in clear (they are needed to sign), in the same 0600 database file
// as the key hashes. (`signature` holds the old `sha256=` signature of rows queued before Standard
// Webhooks signing; such rows are still sent as they were.)
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { migrate } from "../store/database.js";

const MIGRATIONS = [
  `CREATE TABLE webhooks (
     id TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     events TEXT NOT NULL,
     secret TEXT NOT NULL,
     owner TEXT NOT NULL,
     created_ms INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE webhook_deliveries (
     id TEXT PRIMARY KEY,
     webhook_id TEXT REFERENCES webhooks (id) ON DELETE CASCADE,
     batch_id TEXT,
     url TEXT NOT NULL,
     event TEXT NOT NULL,
     body TEXT NOT NULL,
     signature TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_ms INTEGER NOT NULL,
     last_status_code INTEGER,
     last_error TEXT,
     created_ms INTEGER NOT NULL,
     finished_ms INTEGER
   ) STRICT;
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
   CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_ms);
   CREATE INDEX webhook_deliveries_batch ON webhook_deliveries (batch_id);`,
  // Standard Webhooks: each attempt is signed when sent, with the delivery's secret.
  `ALTER TABLE webhook_deliveries ADD COLUMN secret TEXT;`,
];

export const WEBHOOK_EVENTS = ["inference.complete", "batch.complete", "model.loaded"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** A registered webhook (the secret never leaves the server). */
export interface Webhook {
  id: string;
  url: string;
  events: WebhookEvent[];
  secret: string;
  owner: string;
  createdMs: number;
}

/** A delivery as stored: `body` is exactly what is POSTed. */
export interface Delivery {
  id: string;
  webhookId: string | null;
  batchId: string | null;
  url: string;
  event: WebhookEvent;
  body: string;
  /** Signs every attempt (null only for rows queued before Standard Webhooks signing). */
  secret: string | null;
  /** The legacy `sha256=` signature of such rows; empty otherwise. */
  signature: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  nextAttemptMs: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdMs: number;
  finishedMs: number | null;
}

interface WebhookRow {
  id: string;
  url: string;
  events: string;
  secret: string;
  owner: string;
  created_ms: number;
}

interface DeliveryRow {
  id: string;
  webhook_id: string | null;
  batch_id: string | null;
  url: string;
  event: WebhookEvent;
  body: string;
  secret: string | null;
  signature: string;
  status: Delivery["status"];
  attempts: number;
  next_attempt_ms: number;
  last_status_code: number | null;
  last_error: string | null;
  created_ms: number;
  finished_ms: number | null;
}

const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id, url: r.url, events: JSON.parse(r.events) as WebhookEvent[], secret: r.secret, owner: r.owner, createdMs: r.created_ms,
});

const toDelivery = (r: DeliveryRow): Delivery => ({
  id: r.id, webhookId: r.webhook_id, batchId: r.batch_id, url: r.url, event: r.event, body: r.body, secret: r.secret, signature: r.signature,
  status: r.status, attempts: r.attempts, nextAttemptMs: r.next_attempt_ms, lastStatusCode: r.last_status_code,
  lastError: r.last_error, createdMs: r.created_ms, finishedMs: r.finished_ms,
});

/** Finished deliveries are kept this long for `GET /webhooks/{id}/deliveries`, then pruned at start-up. */
const KEEP_FINISHED_MS = 7 * 24 * 3600 * 1000;

export interface NewDelivery {
  webhookId: string | null;
  batchId: string | null;
  url: string;
  event: WebhookEvent;
  body: string;
  secret: string;
}

export const newDeliveryId = () => `dlv_${randomBytes(9).toString("base64url")}`;
export const newWebhookId = () => `wh_${randomBytes(9).toString("base64url")}`;

export class WebhookStore {
  private readonly stmt;

  constructor(db: Database.Database) {
    migrate(db, "webhooks", MIGRATIONS);
    db.prepare("DELETE FROM webhook_deliveries WHERE status != 'pending' AND finished_ms < ?").run(Date.now() - KEEP_FINISHED_MS);
    this.stmt = {
      insertHook: db.prepare("INSERT INTO webhooks (id, url, events, secret, owner, created_ms) VALUES (?, ?, ?, ?, ?, ?)"),
      hooks: db.prepare<[], WebhookRow>("SELECT * FROM webhooks ORDER BY created_ms, rowid"),
      deleteHook: db.prepare("DELETE FROM webhooks WHERE id = ?"),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (id, webhook_id, batch_id, url, event, body, secret, signature, status, next_attempt_ms, created_ms)
         VALUES (@id, @webhookId, @batchId, @url, @event, @body, @secret, '', 'pending', @now, @now)`,
      ),
      due: db.prepare<[number, number], DeliveryRow>(
        "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?",
      ),
      nextDue: db.prepare<[], { at: number | null }>("SELECT min(next_attempt_ms) AS at FROM webhook_deliveries WHERE status = 'pending'"),
      attempt: db.prepare(
        `UPDATE webhook_deliveries SET attempts = attempts + 1, status = @status, last_status_code = @code, last_error = @error,
           next_attempt_ms = coalesce(@next, next_attempt_ms), finished_ms = @finished WHERE id = @id AND status = 'pending'`,
      ),
      byHook: db.prepare<[string, number], DeliveryRow>("SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_ms DESC, rowid DESC LIMIT ?"),
      byBatch: db.prepare<[string], DeliveryRow>("SELECT * FROM webhook_deliveries WHERE batch_id = ? AND webhook_id IS NULL ORDER BY created_ms, rowid"),
    };
  }

  addWebhook(input: Omit<Webhook, "id" | "createdMs">, now = Date.now()): Webhook {
    const hook: Webhook = { ...input, id: newWebhookId(), createdMs: now };
    this.stmt.insertHook.run(hook.id, hook.url, JSON.stringify(hook.events), hook.secret, hook.owner, hook.createdMs);
    return hook;
  }

  webhooks(): Webhook[] {
    return this.stmt.hooks.all().map(toWebhook);
  }

  /** Deletes a webhook and its delivery history (pending deliveries are not sent). */
  deleteWebhook(id: string): boolean {
    return this.stmt.deleteHook.run(id).changes === 1;
  }

  enqueue(d: NewDelivery, now = Date.now()): string {
    const id = newDeliveryId();
    this.stmt.insertDelivery.run({ ...d, id, now });
    return id;
  }

  /** Pending deliveries whose time has come, earliest first. */
  due(now: number, limit: number): Delivery[] {
    return this.stmt.due.all(now, limit).map(toDelivery);
  }

  /** When the earliest pending delivery is due (null: none pending). */
  nextDueMs(): number | null {
    return this.stmt.nextDue.get()?.at ?? null;
  }

  /** Records one attempt: delivered, failed for good (`next` null and not ok), or retried at `next`. */
  recordAttempt(id: string, outcome: { ok: boolean; statusCode: number | null; error: string | null; next: number | null }, now = Date.now()): void {
    const status = outcome.ok ? "delivered" : outcome.next === null ? "failed" : "pending";
    this.stmt.attempt.run({
      id, status, code: outcome.statusCode, error: outcome.error, next: outcome.next, finished: status === "pending" ? null : now,
    });
  }

  deliveriesOf(webhookId: string, limit: number): Delivery[] {
    return this.stmt.byHook.all(webhookId, limit).map(toDelivery);
  }

  /** Deliveries to a batch's own webhook_url. */
  batchDeliveries(batchId: string): Delivery[] {
    return this.stmt.byBatch.all(batchId).map(toDelivery);
  }
}
