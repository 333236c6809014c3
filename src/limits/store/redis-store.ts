import type { Redis } from "ioredis";
import type { RateLimits } from "../../auth/principal.js";
import type { SharedRedis } from "../../shared/redis.js";
import type { LimitName, LimitStore, WindowCount } from "./limit-store.js";
import { withLimitScripts, type LimitScripts } from "./redis-scripts.js";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/** The limit each refusing outcome of the `admit` script names (the order it checks them in). */
const REFUSALS: Record<number, LimitName> = { 1: "requests_per_minute", 2: "requests_per_hour", 3: "tokens_per_minute", 4: "concurrent_requests" };

/** What `admit` decided: the minute window (for the x-ratelimit-* headers), and a refusal or a slot to release. */
export interface Admission {
  minute: { count: number; ttlMs: number };
  /** The limit that refused the request and how long to wait for it (0: unknown, the caller picks). */
  refused?: { limit: LimitName; waitMs: number };
  /** Gives the concurrency slot back (idempotent); a no-op when refused. */
  release: () => void;
}

export interface RedisLimitStoreOptions {
  redis: SharedRedis;
  /** This replica's name: slot ids are `<replicaId>:<n>`, so a set shows who holds what. */
  replicaId: string;
  /** How long a concurrency slot outlives its last refresh (the holder refreshes it every third of this). */
  leaseMs: number;
  log?: { warn(obj: object, msg: string): void };
}

/**
 * Rate-limit windows and concurrency slots in Redis, shared by every replica. Keys are
 * `<prefix>rl:{<subject>}:<kind>` (subject `ip:..`, `key:..`, `user:..`; kind rpm, rph, tpm, conc): the
 * hash tag keeps one subject's keys in one Cluster slot, as `admit` touches all four at once.
 * Concurrency is a sorted set of slot ids scored by lease expiry: a replica that dies mid-request stops
 * refreshing, and its slots are dropped by the next `admit` on that key once their lease has run out.
 * Every call fails at once with the coded 503 (redis_unavailable) while Redis is unreachable.
 */
export class RedisLimitStore implements LimitStore {
  private readonly prefix: string;
  private readonly held = new Map<string, string>(); // slot id -> its concurrency set
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private refreshFailing = false;

  constructor(private readonly opts: RedisLimitStoreOptions) {
    this.prefix = `${opts.redis.prefix}rl:`;
  }

  /** `tpm:ip:1.2.3.4` (the LimitStore keys rate-limit.ts uses) -> `inferno:rl:{ip:1.2.3.4}:tpm`. */
  keyOf(name: string): string {
    const at = name.indexOf(":");
    return at < 0 ? `${this.prefix}{${name}}` : this.subjectKey(name.slice(at + 1), name.slice(0, at));
  }

  async incr(key: string, windowMs: number, by = 1): Promise<WindowCount> {
    const [count, ttl] = await this.run((c) => c.infernoIncrWindow(this.keyOf(key), windowMs, by));
    return { count, resetAt: Date.now() + ttl };
  }

  async get(key: string): Promise<WindowCount | undefined> {
    const [count, ttl] = await this.run((c) => c.infernoReadWindow(this.keyOf(key)));
    return ttl > 0 ? { count, resetAt: Date.now() + ttl } : undefined;
  }

  /** Counts a request of `subject` in its minute and hour windows, checks its tokens and takes a concurrency slot: one script, one round trip. */
  async admit(subject: string, limits: RateLimits): Promise<Admission> {
    const slot = `${this.opts.replicaId}:${++this.seq}`;
    const conc = this.subjectKey(subject, "conc");
    const [outcome, count, ttlMs, waitMs] = await this.run((c) =>
      c.infernoAdmit(
        this.subjectKey(subject, "rpm"), this.subjectKey(subject, "rph"), this.subjectKey(subject, "tpm"), conc,
        limits.requestsPerMinute, limits.requestsPerHour, limits.tokensPerMinute, limits.concurrentRequests,
        slot, this.opts.leaseMs, MINUTE_MS, HOUR_MS,
      ),
    );
    const minute = { count, ttlMs };
    if (outcome !== 0) return { minute, refused: { limit: REFUSALS[outcome]!, waitMs }, release: () => {} };
    this.hold(slot, conc);
    let released = false;
    return {
      minute,
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(slot);
        if (this.held.size === 0) this.stopRefreshing();
        // Unreachable Redis: the lease runs out instead.
        this.run((c) => c.zrem(conc, slot)).catch(() => {});
      },
    };
  }

  /** Stops refreshing leases (the app is closing); slots still held run out with their lease. */
  close(): void {
    this.stopRefreshing();
    this.held.clear();
  }

  private subjectKey(subject: string, kind: string): string {
    return `${this.prefix}{${subject}}:${kind}`;
  }

  private run<T>(command: (client: Redis & LimitScripts) => Promise<T>): Promise<T> {
    return this.opts.redis.run((client) => command(withLimitScripts(client)));
  }

  private hold(slot: string, conc: string): void {
    this.held.set(slot, conc);
    if (this.timer) return;
    this.timer = setInterval(() => this.refresh(), Math.max(100, Math.floor(this.opts.leaseMs / 3)));
    this.timer.unref();
  }

  private stopRefreshing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One script call per concurrency set this replica holds slots in. */
  private refresh(): void {
    const bySet = new Map<string, string[]>();
    for (const [slot, conc] of this.held) bySet.set(conc, [...(bySet.get(conc) ?? []), slot]);
    for (const [conc, slots] of bySet) {
      this.run((c) => c.infernoRefresh(conc, this.opts.leaseMs, ...slots)).then(
        () => (this.refreshFailing = false),
        (err: unknown) => {
          // Once per outage: the refresh is retried every tick.
          if (!this.refreshFailing) this.opts.log?.warn({ err: (err as Error).message }, "could not refresh concurrency leases in Redis");
          this.refreshFailing = true;
        },
      );
    }
  }
}
