// The Redis connection of a replica (config redisUrl): one command connection shared by every component
// that keeps shared state (keys, limits, batches, webhooks), and a subscriber per component that needs
// pub/sub. Commands never queue while Redis is away: they fail at once with a coded 503 and a
// Retry-After, and the connection keeps trying to come back in the background, so a Redis outage is a
// run of fast, clear refusals for what needs it, never a hang or a crash.
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "../core/logger.js";
import { InfernoError } from "../errors/catalogue.js";

/** Seconds a client should wait before retrying a request refused because Redis is unreachable. */
export const REDIS_RETRY_AFTER_S = 2;

/** The coded refusal for work that needs Redis while it is unreachable. */
export function redisUnavailable(cause?: unknown): InfernoError {
  return new InfernoError(
    "SERVICE_UNAVAILABLE",
    "shared state (Redis) is unreachable; retry shortly",
    { reason: "redis_unavailable", retry_after: REDIS_RETRY_AFTER_S },
    cause === undefined ? undefined : { cause },
  );
}

export interface SharedRedisOptions {
  url: string;
  /** Prefix of every key this replica set writes (`inferno:` by default), so a Redis can be shared. */
  keyPrefix?: string;
  log: Logger;
}

/** The replica's Redis: `client` for commands, `subscriber()` for pub/sub, `ready` for health. */
export class SharedRedis {
  readonly client: Redis;
  readonly prefix: string;
  private readonly subscribers = new Set<Redis>();
  private readonly options: RedisOptions;
  private wasReady = false;

  constructor(private readonly opts: SharedRedisOptions) {
    this.prefix = opts.keyPrefix ?? "inferno:";
    this.options = {
      // A command while disconnected fails now instead of waiting in a queue for a Redis that may not come back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      // A Redis that accepts connections but stops answering (stopped, network black hole) fails commands too.
      commandTimeout: 2_000,
      // Reconnect forever, backing off to 2 s.
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
      lazyConnect: false,
    };
    this.client = this.connect("commands");
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return this.client.status === "ready";
  }

  /** Resolves once connected (or rejects after `timeoutMs`): start-up waits for Redis a little, not forever. */
  async waitReady(timeoutMs = 5_000): Promise<void> {
    if (this.ready) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off("ready", onReady);
        reject(new Error(`Redis at ${redactUrl(this.opts.url)} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once("ready", onReady);
    });
  }

  /** A new connection for SUBSCRIBE (a subscribed connection cannot send other commands); closed with this. */
  subscriber(): Redis {
    const sub = this.connect("subscriber", { enableOfflineQueue: true });
    this.subscribers.add(sub);
    return sub;
  }

  /** Runs a command, turning a connection failure into the coded 503 (other Redis errors pass through). */
  async run<T>(command: (client: Redis) => Promise<T>): Promise<T> {
    if (!this.ready) throw redisUnavailable();
    try {
      return await command(this.client);
    } catch (err) {
      if (isConnectionError(err)) throw redisUnavailable(err);
      throw err;
    }
  }

  async close(): Promise<void> {
    const all = [this.client, ...this.subscribers];
    // QUIT on a connection that is not up would wait (a subscriber queues it) for a Redis that may not return.
    await Promise.all(all.map(async (c) => {
      if (c.status === "ready") await Promise.race([c.quit(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]).catch(() => {});
      c.disconnect();
    }));
  }

  private connect(role: string, extra: RedisOptions = {}): Redis {
    const client = new Redis(this.opts.url, { ...this.options, ...extra, connectionName: `inferno-${role}` });
    const log = this.opts.log;
    // Without an error listener ioredis would print every failed reconnect; one line per outage is enough.
    client.on("error", (err: Error) => {
      if (role === "commands" && this.wasReady) {
        this.wasReady = false;
        log.error({ err: err.message, redis: redactUrl(this.opts.url) }, "Redis connection lost; requests that need shared state get 503 until it is back");
      }
    });
    if (role === "commands") {
      client.on("ready", () => {
        if (!this.wasReady) log.info({ redis: redactUrl(this.opts.url) }, "Redis connected");
        this.wasReady = true;
      });
    }
    return client;
  }
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(":") ? `${auth.split(":")[0]}:***` : "***"}@`);
}

function isConnectionError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : "";
  const code = (err as { code?: unknown } | null)?.code;
  return (
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|connect ECONNREFUSED|ETIMEDOUT|Command timed out/.test(message) ||
    code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE"
  );
}
