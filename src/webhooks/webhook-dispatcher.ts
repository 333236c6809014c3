// Sending webhook deliveries, with retries.
//
// Each attempt POSTs the delivery's stored body, signed the Standard Webhooks way (signature.ts:
// `webhook-id`, `webhook-timestamp`, `webhook-signature`), with `X-Inferno-Event` and, for existing
// receivers, `X-Inferno-Delivery` (the same id as webhook-id, stable across retries).
//
// Delivery: a 2xx answer within 10 s is success; anything else (other statuses, redirects included,
// timeouts, refused targets) fails the attempt. Attempt n+1 follows attempt n after backoff(n)
// (default 1 s, 2 s, 4 s, 8 s, 16 s) and a delivery fails for good after `maxAttempts` (default 6).
import http from "node:http";
import https from "node:https";
import type { Logger } from "../core/logger.js";
import { VERSION } from "../version.js";
import { signatureHeaders } from "./signature.js";
import type { Delivery, WebhookStore } from "./webhook-store.js";
import { checkLiteralHost, guardedLookup, parseTarget } from "./webhook-target.js";

export interface DispatcherOptions {
  log: Logger;
  allowPrivate: boolean;
  maxAttempts?: number;
  /** Delay before attempt n + 1 after attempt n failed (n from 1). */
  backoffMs?: (attempt: number) => number;
  timeoutMs?: number;
  /** Deliveries sent at once. */
  concurrency?: number;
}

const MAX_TIMER_MS = 60_000;

/** Sends due deliveries from the store, retrying with backoff; one instance per server. */
export class WebhookDispatcher {
  readonly maxAttempts: number;
  backoffMs: (attempt: number) => number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private readonly inFlight = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly store: WebhookStore, private readonly opts: DispatcherOptions) {
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.backoffMs = opts.backoffMs ?? ((n) => 1000 * 2 ** (n - 1));
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.concurrency = opts.concurrency ?? 4;
  }

  start(): void {
    this.stopped = false;
    this.wake();
  }

  /** Looks for due deliveries now (after an enqueue's transaction has committed). */
  wake(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), 0);
    this.timer.unref();
  }

  /** Aborts the requests in flight (their deliveries stay pending) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const { controller } of this.inFlight.values()) controller.abort();
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    const room = this.concurrency - this.inFlight.size;
    if (room > 0) {
      for (const d of this.store.due(now, room + this.inFlight.size)) {
        if (this.inFlight.size >= this.concurrency) break;
        if (this.inFlight.has(d.id)) continue;
        const controller = new AbortController();
        const done = this.attempt(d, controller.signal).finally(() => {
          this.inFlight.delete(d.id);
          this.wake();
        });
        this.inFlight.set(d.id, { controller, done });
      }
    }
    // Deliveries already due are in flight or wait for a free slot: a finishing attempt wakes us for those.
    const next = this.store.nextDueMs();
    if (next !== null && next > now) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.tick(), Math.min(MAX_TIMER_MS, next - now));
      this.timer.unref();
    }
  }

  private async attempt(d: Delivery, signal: AbortSignal): Promise<void> {
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      statusCode = await this.post(d, signal);
      if (statusCode < 200 || statusCode > 299) error = `answered ${statusCode}`;
    } catch (err) {
      error = (err as Error).message || String(err);
    }
    if (signal.aborted && this.stopped) return; // server stopping: not an attempt, the delivery stays pending
    const ok = error === null;
    const attempts = d.attempts + 1;
    const next = ok || attempts >= this.maxAttempts ? null : Date.now() + this.backoffMs(attempts);
    this.store.recordAttempt(d.id, { ok, statusCode, error, next });
    const log = { delivery: d.id, event: d.event, attempt: attempts, status_code: statusCode };
    if (ok) this.opts.log.debug(log, "webhook delivered");
    else this.opts.log.warn({ ...log, reason: error, retry_at: next && new Date(next).toISOString() }, next ? "webhook delivery failed; will retry" : "webhook delivery failed for good");
  }

  private post(d: Delivery, signal: AbortSignal): Promise<number> {
    const signed = d.secret !== null ? signatureHeaders(d.secret, d.id, d.body) : { "x-inferno-signature": d.signature };
    return postWebhook({ url: d.url, body: d.body, headers: { "x-inferno-event": d.event, "x-inferno-delivery": d.id, ...signed } }, {
      allowPrivate: this.opts.allowPrivate, timeoutMs: this.timeoutMs, signal,
    });
  }
}

/** One POST of a webhook body; resolves with the status code once the answer is read (and discarded). */
export function postWebhook(
  d: { url: string; body: string; headers: Record<string, string> },
  opts: { allowPrivate: boolean; timeoutMs: number; signal?: AbortSignal },
): Promise<number> {
  const url = parseTarget(d.url);
  checkLiteralHost(url, opts.allowPrivate);
  const client = url.protocol === "https:" ? https : http;
  const lookup = guardedLookup(opts.allowPrivate);
  const { signal } = opts;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: "POST",
      ...(signal ? { signal } : {}),
      ...(lookup ? { lookup } : {}),
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(d.body),
        "user-agent": `Inferno/${VERSION}`,
        ...d.headers,
      },
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => {
        clearTimeout(timer);
        resolve(res.statusCode ?? 0);
      });
      res.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(d.body);
  });
}
