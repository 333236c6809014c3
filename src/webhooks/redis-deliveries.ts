// Webhook deliveries in Redis mode (every event: fleet-webhooks.ts, and a batch's own webhook_url) on a
// BullMQ queue, so each is sent by one replica, retried with backoff by any, and survives the replica
// that queued it.
//
// Queue `webhooks` (BullMQ prefix `<prefix>bull`), one job per delivery whose job id is the delivery id.
// For batch.complete the id is derived from the batch (`dlv_<batch id>` for its own webhook_url), so
// queueing it twice (two replicas sweeping, a replica that died before recording it queued) adds one
// job. Finished jobs are kept 7 days, which keeps that dedupe and the status shown on the batch.
// Attempts: 6, exponential backoff from 1 s (1, 2, 4, 8, 16 s), as the SQLite dispatcher. Each attempt
// is signed afresh (signature.ts) under the same webhook-id. At least once: a replica SIGKILLed
// mid-POST leaves its job locked until BullMQ's stalled check (lock 10 s, checked every 5 s) hands it
// to another replica, which sends it again with the same webhook-id, for receivers to dedupe.
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "../core/logger.js";
import { bullConnections, closeBull } from "../shared/bullmq.js";
import { postWebhook } from "./webhook-dispatcher.js";
import { signatureHeaders } from "./signature.js";
import type { WebhookEvent } from "./webhook-store.js";

const MAX_ATTEMPTS = 6;
const KEEP_S = 7 * 24 * 3600;

export interface RedisDelivery {
  id: string;
  url: string;
  event: WebhookEvent;
  body: string;
  secret: string;
}

/** A delivery as the API shows it (see webhooks.ts `deliveryView`). */
export interface DeliveryStatus {
  id: string;
  event: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  max_attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created: number | null;
  next_attempt_at: number | null;
  finished_at: number | null;
}

export class RedisDeliveries {
  private readonly queue: Queue<RedisDelivery>;
  private readonly worker: Worker<RedisDelivery, number>;
  private readonly connections: Redis[];

  constructor(opts: { url: string; prefix: string; allowPrivate: boolean; log: Logger; timeoutMs?: number }) {
    const { producer, consumer, all } = bullConnections(opts.url);
    this.connections = all;
    const prefix = `${opts.prefix}bull`;
    this.queue = new Queue("webhooks", { connection: producer, prefix });
    this.queue.on("error", () => {});
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.worker = new Worker<RedisDelivery, number>(
      "webhooks",
      async (job) => {
        const d = job.data;
        const headers = { "x-inferno-event": d.event, "x-inferno-delivery": d.id, ...signatureHeaders(d.secret, d.id, d.body) };
        const code = await postWebhook({ url: d.url, body: d.body, headers }, { allowPrivate: opts.allowPrivate, timeoutMs });
        if (code < 200 || code > 299) throw new Error(`answered ${code}`);
        return code;
      },
      { connection: consumer, prefix, concurrency: 4, lockDuration: 10_000, stalledInterval: 5_000, maxStalledCount: 100, autorun: false },
    );
    this.worker.on("error", () => {});
    this.worker.on("failed", (job, err) => {
      if (job) opts.log.warn({ delivery: job.id, event: job.data.event, attempt: job.attemptsMade, reason: err.message }, "webhook delivery failed");
    });
  }

  start(): void {
    void this.worker.run().catch(() => {});
  }

  /** Queues a delivery once per id (a second add with the same id is a no-op). */
  async add(d: RedisDelivery): Promise<void> {
    await this.queue.add("deliver", d, {
      jobId: d.id, attempts: MAX_ATTEMPTS, backoff: { type: "exponential", delay: 1_000 },
      removeOnComplete: { age: KEEP_S }, removeOnFail: { age: KEEP_S },
    });
  }

  /** A delivery's status, or null when there is none (or it was pruned). */
  async status(id: string): Promise<DeliveryStatus | null> {
    const job = (await this.queue.getJob(id)) as Job<RedisDelivery, number> | undefined;
    if (!job) return null;
    const state = await job.getState();
    const status = state === "completed" ? "delivered" : state === "failed" ? "failed" : "pending";
    const code = status === "delivered" ? job.returnvalue : Number(/answered (\d+)/.exec(job.failedReason ?? "")?.[1] ?? NaN);
    const unix = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));
    return {
      id, event: job.data.event, status, attempts: job.attemptsStarted ?? job.attemptsMade, max_attempts: MAX_ATTEMPTS,
      last_status_code: Number.isFinite(code) ? code : null, last_error: job.failedReason || null, created: Math.floor(job.timestamp / 1000),
      next_attempt_at: status === "pending" ? unix(job.timestamp + (job.delay ?? 0)) : null, finished_at: unix(job.finishedOn),
    };
  }

  async close(): Promise<void> {
    await closeBull(this.worker, this.queue, this.connections, 2_000);
  }
}
