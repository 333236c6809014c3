// Webhooks: registrations (admin only), event fan-out, and the delivery queue's lifecycle.
//
// Events and where they come from:
// - `model.loaded`: the registry's "load" event, `{model, load_time_ms}`;
// - `inference.complete`: the registry's "generation" event for a live request (one per generated
//   choice), `{request_id, model, prompt_tokens, tokens_generated, duration_ms, finish_reason}`, the
//   request id being the response's X-Request-Id. Batch items are reported by the batch worker instead,
//   with `batch_id` and `item_id` too, in the transaction that stores their result, so an item
//   re-run after a crash is not reported twice. Nothing is written when no webhook wants the event;
// - `batch.complete`: the batch worker, when a batch's last item finishes, to every registered
//   webhook that wants it and to the batch's own `webhook_url` (signed with the batch's secret).
// Signing: signature.ts (Standard Webhooks); retries: webhook-dispatcher.ts; target checks: webhook-target.ts.
import { AsyncLocalStorage } from "node:async_hooks";
import type Database from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Logger } from "../core/logger.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { WebhookDispatcher, type DispatcherOptions } from "./webhook-dispatcher.js";
import { eventBody } from "./signature.js";
import type { FleetWebhooks } from "./fleet-webhooks.js";
import { newWebhookId, WEBHOOK_EVENTS, WebhookStore, type Delivery, type Webhook, type WebhookEvent } from "./webhook-store.js";
import { validateTarget } from "./webhook-target.js";
import { resourceIdParams } from "../http/params.js";

declare module "fastify" {
  interface FastifyInstance {
    webhooks: Webhooks;
  }
}

/** A single destination with its own secret (a batch's `webhook_url`). */
export interface WebhookTarget {
  url: string;
  secret: string;
}

export type WebhooksOptions = { log: Logger; allowPrivate: boolean } & Pick<DispatcherOptions, "maxAttempts" | "backoffMs">;

/**
 * Registered webhooks, the events sent to them, and their delivery queue: this process's SQLite, or with
 * `fleet` (config redisUrl) registrations and deliveries shared by every replica through Redis.
 */
export class Webhooks {
  readonly store: WebhookStore;
  readonly dispatcher: WebhookDispatcher;
  private hooks: Webhook[];

  constructor(db: Database.Database, private readonly opts: WebhooksOptions, readonly fleet?: FleetWebhooks) {
    this.store = new WebhookStore(db);
    this.dispatcher = new WebhookDispatcher(this.store, opts);
    this.hooks = fleet ? [] : this.store.webhooks();
  }

  /** Refuses a URL a delivery could not (or must not) be sent to; see webhook-target.ts. */
  async checkTarget(url: string): Promise<void> {
    await validateTarget(url, this.opts.allowPrivate);
  }

  async register(input: { url: string; events: WebhookEvent[]; secret: string; owner: string }): Promise<Webhook> {
    await this.checkTarget(input.url);
    const fields = { ...input, events: [...new Set(input.events)] };
    if (this.fleet) {
      const hook: Webhook = { ...fields, id: newWebhookId(), createdMs: Date.now() };
      await this.fleet.add(hook);
      return hook;
    }
    const hook = this.store.addWebhook(fields);
    this.hooks = this.store.webhooks();
    return hook;
  }

  async remove(id: string): Promise<boolean> {
    if (this.fleet) return this.fleet.remove(id);
    const removed = this.store.deleteWebhook(id);
    this.hooks = this.store.webhooks();
    return removed;
  }

  /** The registrations: the fleet's with redisUrl, else this process's. */
  private get registered(): readonly Webhook[] {
    return this.fleet?.list() ?? this.hooks;
  }

  list(): Webhook[] {
    return [...this.registered];
  }

  /** Whether anything would be sent for this event (to skip building data nobody wants). */
  wants(event: WebhookEvent): boolean {
    return this.registered.some((h) => h.events.includes(event));
  }

  /** A webhook's latest deliveries, newest first, as the API shows them. */
  async deliveriesOf(id: string, limit: number) {
    if (this.fleet) return this.fleet.deliveriesOf(id, limit);
    return this.store.deliveriesOf(id, limit).map((d) => deliveryView(d, this.dispatcher.maxAttempts));
  }

  /**
   * Queues the event for every webhook that wants it, and for `target` when given. Synchronous, so it
   * joins the caller's SQLite transaction when there is one; sending starts once that has committed. With
   * `fleet`, each delivery goes to the shared queue in the background.
   */
  emit(event: WebhookEvent, data: Record<string, unknown>, opts: { target?: WebhookTarget | undefined; batchId?: string } = {}): void {
    let queued = false;
    const body = eventBody(event, data);
    if (this.fleet) {
      for (const hook of this.fleet.list()) if (hook.events.includes(event)) this.fleet.deliver(hook, event, body);
      // A batch's own webhook_url is queued by the batch home (redisBatchFinished), once per batch.
      return;
    }
    for (const hook of this.hooks) {
      if (!hook.events.includes(event)) continue;
      this.store.enqueue({ webhookId: hook.id, batchId: opts.batchId ?? null, url: hook.url, event, body, secret: hook.secret });
      queued = true;
    }
    if (opts.target) {
      const { url, secret } = opts.target;
      this.store.enqueue({ webhookId: null, batchId: opts.batchId ?? null, url, event, body, secret });
      queued = true;
    }
    if (queued) this.dispatcher.wake();
  }
}

const unix = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

/** A delivery as the API shows it. */
export function deliveryView(d: Delivery, maxAttempts: number) {
  return {
    id: d.id,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    max_attempts: maxAttempts,
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    created: unix(d.createdMs),
    next_attempt_at: d.status === "pending" ? unix(d.nextAttemptMs) : null,
    finished_at: unix(d.finishedMs),
  };
}

const hookView = (h: Webhook) => ({ id: h.id, webhook_url: h.url, events: h.events, created: unix(h.createdMs) });

const registerBody = z.object({
  webhook_url: z.string().min(1).max(2048),
  events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(16),
  secret: z.string().min(16, "secret must be at least 16 characters").max(256),
});

export interface WebhooksPluginOptions {
  db: Database.Database;
  registry: ModelRegistry;
  allowPrivate: boolean;
  /** With redisUrl: registrations and deliveries shared by the replicas. */
  fleet?: FleetWebhooks | undefined;
}

async function webhooksPlugin(app: FastifyInstance, opts: WebhooksPluginOptions): Promise<void> {
  const webhooks = new Webhooks(opts.db, { log: app.log, allowPrivate: opts.allowPrivate }, opts.fleet);
  app.decorate("webhooks", webhooks);
  webhooks.dispatcher.start();
  app.addHook("preClose", async () => webhooks.dispatcher.stop());
  const fleet = opts.fleet;
  if (fleet) {
    app.addHook("onReady", async () => fleet.start());
    app.addHook("preClose", async () => fleet.close());
  }

  // Registry events carry no request: this storage links a generation back to the request it ran for.
  const requestIds = new AsyncLocalStorage<string>();
  app.addHook("preHandler", (request, _reply, done) => requestIds.run(request.id, done));
  const unobserve = opts.registry.observe((event) => {
    if (event.kind === "load") {
      if (webhooks.wants("model.loaded")) webhooks.emit("model.loaded", { model: event.model, load_time_ms: Math.round(event.ms) });
    } else if (event.kind === "generation") {
      const requestId = requestIds.getStore();
      if (requestId === undefined || !webhooks.wants("inference.complete")) return;
      const r = event.result;
      webhooks.emit("inference.complete", {
        request_id: requestId, model: event.model, prompt_tokens: r.promptTokens, tokens_generated: r.completionTokens,
        duration_ms: Math.round(r.totalMs), finish_reason: r.finishReason,
      });
    }
  });
  app.addHook("onClose", async () => unobserve());

  const admin = { role: "admin" as const };
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.post("/webhooks", { schema: { body: registerBody }, config: admin }, async (request, reply) => {
    const { webhook_url, events, secret } = request.body;
    const hook = await webhooks.register({ url: webhook_url, events, secret, owner: request.principal?.user ?? "anonymous" });
    return reply.code(201).send(hookView(hook));
  });
  routes.get("/webhooks", { config: admin }, async () => ({ webhooks: webhooks.list().map(hookView) }));
  routes.delete("/webhooks/:id", { schema: { params: resourceIdParams }, config: admin }, async (request) => {
    if (!(await webhooks.remove(request.params.id))) throw new InfernoError("NOT_FOUND", `webhook '${request.params.id}' not found`);
    return { id: request.params.id, deleted: true };
  });
  routes.get(
    "/webhooks/:id/deliveries",
    { schema: { params: resourceIdParams, querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }) }, config: admin },
    async (request) => {
      const { id } = request.params;
      if (!webhooks.list().some((h) => h.id === id)) throw new InfernoError("NOT_FOUND", `webhook '${id}' not found`);
      return { webhook_id: id, deliveries: await webhooks.deliveriesOf(id, request.query.limit ?? 100) };
    },
  );
}

/** Webhook registrations (`/webhooks`, admin), live events, and the persistent delivery queue (as `app.webhooks`). */
export default fp(webhooksPlugin, { name: "inferno-webhooks", fastify: "5.x" });
