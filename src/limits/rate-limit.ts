import fastifyRateLimit, { normalizeIP } from "@fastify/rate-limit";
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import fp from "fastify-plugin";
import type { Principal, RateLimits } from "../auth/principal.js";
import type { Config } from "../config/config.js";
import { InfernoError } from "../errors/catalogue.js";
import type { RegistryEvent } from "../registry/model-registry.js";
import type { LimitName, LimitStore } from "./store/limit-store.js";
import { LocalStore } from "./store/local-store.js";
import { HOUR_MS, MINUTE_MS, type Admission, type RedisLimitStore } from "./store/redis-store.js";
import { UsageContext } from "./usage-context.js";

/**
 * The limits for transports that are not Fastify routes (gRPC, IPC): one call is one request, counted in
 * the same windows as HTTP requests of the same key. A refusal throws RATE_LIMIT_EXCEEDED with
 * `details.retry_after` (seconds).
 */
export interface RateLimiter {
  enabled: boolean;
  /** Counts a request of `principal` (or of `ip` without a key); resolves to its key and the release of its concurrency slot. */
  admit(principal: Principal | undefined, ip: string): Promise<{ key: string; release: () => void }>;
  /** Runs `fn` so that the generations it starts are charged to `key`'s tokens per minute. */
  runAs<T>(key: string, fn: () => T): T;
}

declare module "fastify" {
  interface FastifyInstance {
    rateLimiter: RateLimiter;
  }
}

export type { LimitName } from "./store/limit-store.js";

export interface RateLimitPluginOptions {
  /** Off: nothing is counted and no headers are added. */
  enabled: boolean;
  /** Limits of a key without overrides, and of every IP. */
  defaults: RateLimits;
  /** Finished generations (the model registry's events), charged to tokens per minute. */
  generations: { observe(listener: (event: RegistryEvent) => void): () => void };
  /** Whose usage a generation is (shared with the batch worker, which runs items as their owner's). */
  usage?: UsageContext;
  /** Where the windows are counted; a LocalStore by default. */
  store?: LimitStore;
  /**
   * Every limit in Redis, shared by all replicas (config redisUrl): one script per request checks and
   * counts all four at once, in place of @fastify/rate-limit and `store`.
   */
  redisStore?: RedisLimitStore;
  /** The clock of the windows (tests move it). */
  now?: () => number;
}

/** Concurrency has no window to wait for; a client refused by it is told to retry this much later. */
const CONCURRENCY_RETRY_MS = 1000;
const RESET = "x-ratelimit-reset";
const RESET_AFTER = "x-ratelimit-reset-after";

/** The plugin's options from the config: on when `rateLimit` says so, else when auth is on. */
export function rateLimitSettings(config: Config): Pick<RateLimitPluginOptions, "enabled" | "defaults"> {
  const { requestsPerMinute, requestsPerHour, tokensPerMinute, concurrentRequests } = config;
  return { enabled: config.rateLimit ?? config.auth, defaults: { requestsPerMinute, requestsPerHour, tokensPerMinute, concurrentRequests } };
}

/** Health checks are for load balancers and orchestrators, which must never be refused. */
const isExempt = (url: string) => url === "/health" || url.startsWith("/health/") || url.startsWith("/v2/health/");

/**
 * Limits apply per API key, or per client IP (IPv6 by /64, as @fastify/rate-limit does) without one.
 * Exported so that work done later on a request's behalf (a batch) is charged to the same key.
 */
export function limitKey(request: FastifyRequest): string {
  return principalKey(request.principal, request.ip);
}

/** The rate-limit key of a principal connecting from `ip`, on any transport. */
export function principalKey(p: Principal | undefined, ip: string): string {
  if (p?.keyId) return `key:${p.keyId}`;
  // A JWT user is counted as that user wherever they connect from.
  if (p?.via === "jwt") return `user:${p.user}`;
  return `ip:${normalizeIP(ip)}`;
}

function limitsOf(request: FastifyRequest, defaults: RateLimits): RateLimits {
  return limitsFor(request.principal, defaults);
}

function limitsFor(principal: Principal | undefined, defaults: RateLimits): RateLimits {
  const own = principal?.limits;
  return {
    requestsPerMinute: own?.requestsPerMinute ?? defaults.requestsPerMinute,
    requestsPerHour: own?.requestsPerHour ?? defaults.requestsPerHour,
    tokensPerMinute: own?.tokensPerMinute ?? defaults.tokensPerMinute,
    concurrentRequests: own?.concurrentRequests ?? defaults.concurrentRequests,
  };
}

/**
 * @fastify/rate-limit's store contract over a LimitStore, so its per-minute counts live in the same
 * (swappable) store as the windows this plugin adds. The plugin constructs it with its options.
 */
function pluginStore(store: LimitStore, now: () => number): fastifyRateLimit.FastifyRateLimitStoreCtor {
  class Adapter implements fastifyRateLimit.FastifyRateLimitStore {
    constructor(_options?: unknown, private readonly prefix = "rpm:") {}
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
      store.incr(this.prefix + key, timeWindow).then(
        (w) => callback(null, { current: w.count, ttl: Math.max(0, w.resetAt - now()) }),
        (err: Error) => callback(err),
      );
    }
    // A route with its own `config.rateLimit` object counts apart from the others. The plugin passes
    // that route's merged options, with the route itself under `routeInfo` (not what its typings say).
    child(options: RouteOptions): fastifyRateLimit.FastifyRateLimitStore {
      const route = (options as { routeInfo?: Partial<RouteOptions> }).routeInfo ?? options;
      return new Adapter(undefined, `rpm:${String(route.method)} ${route.url}:`);
    }
  }
  return Adapter;
}

/**
 * @fastify/rate-limit writes seconds until the reset in X-RateLimit-Reset; the API reference gives that
 * as X-RateLimit-Reset-After and X-RateLimit-Reset as the epoch second of the reset.
 */
function epochReset(reply: FastifyReply, now: number): void {
  const after = reply.getHeader(RESET);
  if (after === undefined || reply.hasHeader(RESET_AFTER)) return;
  const seconds = Number(after);
  reply.header(RESET_AFTER, seconds).header(RESET, Math.ceil(now / 1000) + seconds);
}

/**
 * The route hook with Redis: one `admit` script for all four limits, then the headers @fastify/rate-limit
 * would have set (reset in seconds; `epochReset` rewrites it on the way out). Unreachable Redis throws
 * the coded 503 from the store: limits that cannot be checked refuse rather than vanish.
 */
function sharedEnforcer(redis: RedisLimitStore, limits: (request: FastifyRequest) => RateLimits, refusal: (admission: Admission) => InfernoError | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const limit = limits(request);
    const max = limit.requestsPerMinute;
    const admission = await redis.admit(limitKey(request), limit);
    const { minute } = admission;
    reply.header("x-ratelimit-limit", max).header("x-ratelimit-remaining", Math.max(0, max - minute.count)).header(RESET, Math.ceil(minute.ttlMs / 1000));
    const refused = refusal(admission);
    if (refused) {
      reply.header("retry-after", refused.details?.retry_after);
      throw refused;
    }
    reply.raw.once("close", admission.release);
    if (reply.raw.destroyed) admission.release();
  };
}

type Hook = NonNullable<RouteOptions["onRequest"]>;

/** Adds a route-level hook after the ones the route (or an earlier onRoute hook) has; a new array, as HEAD routes share options. */
function appendHook(route: RouteOptions, name: "onRequest" | "preHandler", hook: unknown): void {
  const existing = route[name] as Hook | undefined;
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
  (route as { [k in typeof name]?: unknown })[name] = [...list, hook];
}

async function rateLimit(app: FastifyInstance, opts: RateLimitPluginOptions): Promise<void> {
  if (!opts.enabled) {
    app.decorate("rateLimiter", { enabled: false, admit: async (p, ip) => ({ key: principalKey(p, ip), release: () => {} }), runAs: (_key, fn) => fn() } satisfies RateLimiter);
    return;
  }
  const now = opts.now ?? Date.now;
  const shared = opts.redisStore;
  const store = shared ?? opts.store ?? new LocalStore(now);
  const limits = (request: FastifyRequest) => limitsOf(request, opts.defaults);
  const inFlight = new Map<string, number>();
  // Finished generations are charged to the key whose request (or batch) ran them (usage-context.ts).
  const usage = opts.usage ?? new UsageContext();

  const exceeded = (limit: LimitName, waitMs: number) => {
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    // The metrics plugin is optional here (and may be registered after this one): looked up per refusal.
    const metrics = app.hasDecorator("metrics") ? (app as { metrics?: { rateLimited?: { inc(labels: { limit: string }): void } } }).metrics : undefined;
    metrics?.rateLimited?.inc({ limit });
    return new InfernoError("RATE_LIMIT_EXCEEDED", `Rate limit exceeded. Please retry after ${retryAfter} seconds.`, {
      retry_after: retryAfter,
      limit,
    });
  };

  /** The windows @fastify/rate-limit does not keep (hour, tokens, concurrency); resolves to the release of the concurrency slot. */
  const admitWindows = async (key: string, limit: RateLimits): Promise<() => void> => {
    const started = now();
    const hour = await store.incr(`rph:${key}`, HOUR_MS);
    if (hour.count > limit.requestsPerHour) throw exceeded("requests_per_hour", hour.resetAt - started);
    const tokens = await store.get(`tpm:${key}`);
    if (tokens && tokens.count >= limit.tokensPerMinute) throw exceeded("tokens_per_minute", tokens.resetAt - started);
    const running = inFlight.get(key) ?? 0;
    if (running >= limit.concurrentRequests) throw exceeded("concurrent_requests", CONCURRENCY_RETRY_MS);
    inFlight.set(key, running + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (inFlight.get(key) ?? 1) - 1;
      if (left > 0) inFlight.set(key, left);
      else inFlight.delete(key);
    };
  };

  /** With Redis: the 429 for a refused admission. */
  const refusal = ({ refused }: Admission) =>
    refused && exceeded(refused.limit, refused.limit === "concurrent_requests" ? CONCURRENCY_RETRY_MS : refused.waitMs);

  app.decorate("rateLimiter", {
    enabled: true,
    admit: async (principal, ip) => {
      const key = principalKey(principal, ip);
      const limit = limitsFor(principal, opts.defaults);
      if (shared) {
        const admission = await shared.admit(key, limit);
        const refused = refusal(admission);
        if (refused) throw refused;
        return { key, release: admission.release };
      }
      // Counted in the same per-minute window as the HTTP routes (@fastify/rate-limit's global store keys).
      const minute = await store.incr(`rpm:${key}`, MINUTE_MS);
      if (minute.count > limit.requestsPerMinute) throw exceeded("requests_per_minute", minute.resetAt - now());
      return { key, release: await admitWindows(key, limit) };
    },
    runAs: (key, fn) => usage.run(key, fn),
  } satisfies RateLimiter);

  // Runs after @fastify/rate-limit's per-minute hook (both are route hooks, added in this order).
  const enforce = async (request: FastifyRequest, reply: FastifyReply) => {
    epochReset(reply, now());
    let release: () => void;
    try {
      release = await admitWindows(limitKey(request), limits(request));
    } catch (err) {
      if (err instanceof InfernoError && err.details?.retry_after !== undefined) reply.header("retry-after", err.details.retry_after);
      throw err;
    }
    // 'close' comes once for every response, streams (hijacked) included; it may have come already.
    reply.raw.once("close", release);
    if (reply.raw.destroyed) release();
  };

  const unobserve = opts.generations.observe((event) => {
    if (event.kind !== "generation") return;
    const key = usage.key();
    if (key === undefined) return;
    store.incr(`tpm:${key}`, MINUTE_MS, event.result.promptTokens + event.result.completionTokens).catch((err: unknown) => {
      app.log.warn({ err }, "could not count tokens against the rate limit");
    });
  });
  app.addHook("onClose", async () => {
    unobserve();
    shared?.close();
  });

  // Exempt routes get `config.rateLimit: false` before @fastify/rate-limit sees them, so a route's
  // policy reads the same whether it came from here or from the route itself.
  app.addHook("onRoute", (route) => {
    if (isExempt(route.url)) route.config = { ...route.config, rateLimit: false } as typeof route.config;
  });
  // With Redis, one hook of ours does what @fastify/rate-limit's and `enforce` do: one round trip, not two.
  if (!shared) {
    await app.register(fastifyRateLimit, {
      global: true,
      hook: "onRequest",
      timeWindow: MINUTE_MS,
      max: (request) => limits(request).requestsPerMinute,
      keyGenerator: limitKey,
      store: pluginStore(store, now),
      addHeadersOnExceeding: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true },
      addHeaders: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true, "retry-after": true },
      errorResponseBuilder: (_request, context) => exceeded("requests_per_minute", context.ttl),
    });
  }
  const check = shared ? sharedEnforcer(shared, limits, refusal) : enforce;
  app.addHook("onRoute", (route) => {
    if (route.config?.rateLimit === false) return;
    appendHook(route, "onRequest", check);
    appendHook(route, "preHandler", (request: FastifyRequest, _reply: FastifyReply, done: () => void) =>
      usage.run(limitKey(request), done),
    );
  });
  // A refusal by the per-minute limit is thrown before `enforce` runs; its headers are fixed on the way out.
  app.addHook("onSend", async (_request, reply, payload) => {
    epochReset(reply, now());
    return payload;
  });
}

/**
 * Rate limits per API key (or per IP): requests per minute (@fastify/rate-limit), and what it lacks,
 * requests per hour, tokens per minute and concurrent requests, all answered with 429 RATE_LIMIT_EXCEEDED.
 * With a RedisLimitStore all four are counted in Redis across replicas (store/redis-store.ts).
 */
export const rateLimitPlugin = fp(rateLimit, { name: "inferno-rate-limit", fastify: "5.x" });
