// Webhook registrations shared by every replica (config redisUrl), and their deliveries on the fleet's
// BullMQ queue (redis-deliveries.ts), so that a webhook registered on one replica hears the events of all:
// `inference.complete` from whichever replica served the request, `model.loaded` from the replica that
// loaded, `batch.complete` once per batch.
//
// Keys (under the SharedRedis prefix): `webhooks`, a hash of id → the registration's JSON (secret
// included: Redis is the fleet's trusted store, as for API keys); `webhook:<id>:deliveries`, a list of
// the last 1,000 delivery ids of that webhook, newest first, for GET /webhooks/{id}/deliveries. A change
// is published on `webhooks:changed`; each replica reloads the hash then (and every 30 s, and when its
// subscriber reconnects), so a registration or removal reaches every replica in well under a second.
//
// Redis away: registering and removing answer 503 (SharedRedis), events keep the last list; an event whose
// delivery cannot be queued is logged and dropped (at most once, as the SQLite queue is at least once).
import type { Redis } from "ioredis";
import type { Logger } from "../core/logger.js";
import type { SharedRedis } from "../shared/redis.js";
import type { DeliveryStatus, RedisDeliveries } from "./redis-deliveries.js";
import { newDeliveryId, type Webhook, type WebhookEvent } from "./webhook-store.js";

const REFRESH_MS = 30_000;
const KEEP_DELIVERIES = 1000;

export class FleetWebhooks {
  private hooks: Webhook[] = [];
  private subscriber: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;
  private readonly channel: string;

  constructor(
    private readonly shared: SharedRedis,
    readonly deliveries: RedisDeliveries,
    private readonly log: Logger,
  ) {
    this.key = `${shared.prefix}webhooks`;
    this.channel = `${shared.prefix}webhooks:changed`;
  }

  private deliveriesKey(hookId: string): string {
    return `${this.shared.prefix}webhook:${hookId}:deliveries`;
  }

  /** Loads the registrations, follows their changes, and starts sending. */
  async start(): Promise<void> {
    this.subscriber = this.shared.subscriber();
    this.subscriber.on("message", () => void this.refresh());
    this.subscriber.on("ready", () => void this.refresh());
    void this.subscriber.subscribe(this.channel).catch(() => {});
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS).unref();
    await this.refresh();
    this.deliveries.start();
  }

  /** Re-reads every registration; while Redis is away the last list stays. */
  async refresh(): Promise<void> {
    try {
      const all = await this.shared.run((r) => r.hgetall(this.key));
      this.hooks = Object.values(all)
        .map((json) => JSON.parse(json) as Webhook)
        .sort((a, b) => a.createdMs - b.createdMs || a.id.localeCompare(b.id));
    } catch {
      // SharedRedis logs the outage; the subscriber's reconnect brings a refresh.
    }
  }

  list(): Webhook[] {
    return this.hooks;
  }

  async add(hook: Webhook): Promise<void> {
    await this.shared.run((r) => r.multi().hset(this.key, hook.id, JSON.stringify(hook)).publish(this.channel, hook.id).exec());
    this.hooks = [...this.hooks.filter((h) => h.id !== hook.id), hook];
  }

  /** Removes a registration and its delivery history; false when there was none. */
  async remove(id: string): Promise<boolean> {
    const removed = await this.shared.run(async (r) => {
      const [[, n] = []] = (await r.multi().hdel(this.key, id).del(this.deliveriesKey(id)).publish(this.channel, id).exec()) ?? [];
      return n === 1;
    });
    this.hooks = this.hooks.filter((h) => h.id !== id);
    return removed;
  }

  /** Queues one delivery of `body` to the webhook, in the background: an event never waits for Redis. */
  deliver(hook: Webhook, event: WebhookEvent, body: string): void {
    const id = newDeliveryId();
    const list = this.deliveriesKey(hook.id);
    void (async () => {
      await this.deliveries.add({ id, url: hook.url, event, body, secret: hook.secret });
      await this.shared.run((r) => r.multi().lpush(list, id).ltrim(list, 0, KEEP_DELIVERIES - 1).exec());
    })().catch((err: unknown) => {
      this.log.warn({ webhook: hook.id, event, delivery: id, reason: err instanceof Error ? err.message : String(err) }, "webhook event not queued: Redis unavailable");
    });
  }

  /** The webhook's latest deliveries, newest first, as the API shows them. */
  async deliveriesOf(hookId: string, limit: number): Promise<DeliveryStatus[]> {
    const ids = await this.shared.run((r) => r.lrange(this.deliveriesKey(hookId), 0, limit - 1));
    const statuses = await Promise.all(ids.map((id) => this.deliveries.status(id)));
    return statuses.filter((s): s is DeliveryStatus => s !== null);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.deliveries.close();
  }
}
