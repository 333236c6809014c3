// API keys in Redis, for replicas that share them (config redisUrl). Same keys, same hashing and the same
// answers as the SQLite store (api-keys.ts); the differences are about many processes:
// - `<prefix>auth:key:<id>` is a hash per key (user, name, role, secret_sha256 as hex, limits as JSON,
//   created_ms, expires_ms, revoked_ms, last_used_ms; unset fields absent), `<prefix>auth:keys` a sorted
//   set of ids by creation time for listing. A key names its id, so verifying is one HGETALL and a
//   constant-time compare of the secret's sha256: no index by hash is needed, and no plaintext is kept.
// - A verified key is cached here for VERIFIED_TTL_MS; a revocation anywhere drops it at once through
//   the auth channel (auth-channel.ts), the TTL bounds it should a message be lost.
// - While Redis is unreachable a key verified within the TTL still works and any other gets the coded
//   503 (fail closed): the cache is never extended without Redis.
// - last_used_at is written in batches every TOUCH_FLUSH_MS, at most once a minute per key and replica,
//   never on the request's path.
import type { Redis } from "ioredis";
import { InfernoError } from "../errors/catalogue.js";
import type { SharedRedis } from "../shared/redis.js";
import {
  createdKey, keyPrincipal, newApiKey, parseKey, seconds, secretMatches, sha256, TOUCH_INTERVAL_MS,
  type ApiKeyInfo, type CreateApiKeyInput, type CreatedApiKey,
} from "./api-keys.js";
import { publishChange } from "./auth-channel.js";
import type { Principal, RateLimits, Role } from "./principal.js";
import type { ApiKeys } from "./stores.js";

/** How long a verified key is trusted without asking Redis again. */
export const VERIFIED_TTL_MS = 5_000;
/** How often pending last-used times are written. */
export const TOUCH_FLUSH_MS = 5_000;
const MAX_CACHED = 10_000;

// KEYS: the key's hash, the index. ARGV: id, created_ms, then field/value pairs.
const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`;
// KEYS: the key's hash. ARGV: now. The first revocation time stays.
const REVOKE = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'revoked_ms', ARGV[1])
return 1`;
// KEYS: keys' hashes; ARGV: their last-used times. Never creates a hash, never moves a time back.
const TOUCH = `for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local cur = tonumber(redis.call('HGET', key, 'last_used_ms') or '0')
    if cur < tonumber(ARGV[i]) then redis.call('HSET', key, 'last_used_ms', ARGV[i]) end
  end
end
return 0`;

type Fields = Record<string, string>;
const num = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));

function info(id: string, f: Fields): ApiKeyInfo {
  return {
    id,
    user: f.user!,
    name: f.name!,
    role: f.role as Role,
    created: Math.floor(Number(f.created_ms) / 1000),
    expires_at: seconds(num(f.expires_ms)),
    revoked_at: seconds(num(f.revoked_ms)),
    last_used_at: seconds(num(f.last_used_ms)),
    limits: f.limits === undefined ? null : (JSON.parse(f.limits) as Partial<RateLimits>),
  };
}

interface Cached {
  secret: Buffer;
  principal: Principal;
  expiresMs: number | null;
  until: number;
}

export class RedisApiKeyStore implements ApiKeys {
  readonly #redis: SharedRedis;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, Cached>();
  /** Last-used times not yet written, and the last time known written (or read) per key. */
  readonly #pending = new Map<string, number>();
  readonly #known = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #generation = 0;

  constructor(redis: SharedRedis, options: { now?: () => number; ttlMs?: number } = {}) {
    this.#redis = redis;
    this.#now = options.now ?? Date.now;
    this.#ttlMs = options.ttlMs ?? VERIFIED_TTL_MS;
    this.#timer = setInterval(() => void this.flush(), TOUCH_FLUSH_MS).unref();
  }

  #key(id: string): string {
    return `${this.#redis.prefix}auth:key:${id}`;
  }

  async create(input: CreateApiKeyInput): Promise<CreatedApiKey> {
    const k = newApiKey(input, this.#now());
    const fields = ["user", k.user, "name", k.name, "role", k.role, "secret_sha256", sha256(k.secret).toString("hex"), "created_ms", String(k.createdMs)];
    if (k.limits !== null) fields.push("limits", k.limits);
    if (k.expiresMs !== null) fields.push("expires_ms", String(k.expiresMs));
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = k.id();
      const index = `${this.#redis.prefix}auth:keys`;
      const created = await this.#redis.run((c) => c.eval(CREATE, 2, this.#key(id), index, id, String(k.createdMs), ...fields));
      if (created === 1) return createdKey(k, id);
    }
    throw new InfernoError("INTERNAL_ERROR", "could not allocate an API key id");
  }

  async list(filter: { user?: string } = {}): Promise<ApiKeyInfo[]> {
    const ids = await this.#redis.run((c) => c.zrange(`${this.#redis.prefix}auth:keys`, 0, -1));
    const rows = await this.#redis.run((c) => hashes(c, ids.map((id) => this.#key(id))));
    const keys = ids.flatMap((id, i) => (Object.keys(rows[i]!).length > 0 ? [info(id, rows[i]!)] : []));
    return filter.user === undefined ? keys : keys.filter((k) => k.user === filter.user);
  }

  async get(id: string): Promise<ApiKeyInfo | undefined> {
    const f = await this.#redis.run((c) => c.hgetall(this.#key(id)));
    return Object.keys(f).length > 0 ? info(id, f) : undefined;
  }

  async revoke(id: string): Promise<ApiKeyInfo | undefined> {
    const found = await this.#redis.run((c) => c.eval(REVOKE, 1, this.#key(id), String(this.#now())));
    if (found !== 1) return undefined;
    this.invalidate(id);
    await publishChange(this.#redis, { kind: "key", id });
    return this.get(id);
  }

  async verify(key: string): Promise<Principal | undefined> {
    const parsed = parseKey(key);
    if (!parsed) return undefined;
    const now = this.#now();
    const hit = this.#cache.get(parsed.id);
    if (hit && now < hit.until && secretMatches(hit.secret, parsed.secret)) {
      if (hit.expiresMs !== null && now >= hit.expiresMs) return undefined;
      this.#used(parsed.id, now);
      return { ...hit.principal };
    }
    const generation = this.#generation;
    const f = await this.#redis.run((c) => c.hgetall(this.#key(parsed.id)));
    if (f.secret_sha256 === undefined) return undefined;
    const secret = Buffer.from(f.secret_sha256, "hex");
    if (!secretMatches(secret, parsed.secret)) return undefined;
    const expiresMs = num(f.expires_ms);
    if (f.revoked_ms !== undefined || (expiresMs !== null && now >= expiresMs)) return undefined;
    const principal = keyPrincipal(parsed.id, f.user!, f.role as Role, f.limits ?? null);
    // Not cached when a revocation was announced while Redis answered: the answer may predate it.
    if (generation === this.#generation) {
      if (this.#cache.size >= MAX_CACHED) this.#sweep(now);
      this.#cache.set(parsed.id, { secret, principal, expiresMs, until: now + this.#ttlMs });
    }
    if (!this.#known.has(parsed.id)) this.#known.set(parsed.id, num(f.last_used_ms) ?? 0);
    this.#used(parsed.id, now);
    return { ...principal };
  }

  /** Forgets a cached key (it was revoked, here or on another replica). */
  invalidate(id: string): void {
    this.#generation++;
    this.#cache.delete(id);
  }

  /** Forgets every cached key. */
  clear(): void {
    this.#generation++;
    this.#cache.clear();
  }

  /** Writes the pending last-used times (one script call); kept for the next flush when Redis is away. */
  async flush(): Promise<void> {
    if (this.#pending.size === 0 || !this.#redis.ready) return;
    const batch = [...this.#pending];
    this.#pending.clear();
    try {
      await this.#redis.run((c) => c.eval(TOUCH, batch.length, ...batch.map(([id]) => this.#key(id)), ...batch.map(([, ms]) => String(ms))));
    } catch {
      for (const [id, ms] of batch) if (!this.#pending.has(id)) this.#pending.set(id, ms);
    }
  }

  /** Stops the flush timer after a last flush. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  #used(id: string, now: number): void {
    if (now - (this.#known.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    if (this.#known.size >= MAX_CACHED) this.#known.clear();
    this.#known.set(id, now);
    this.#pending.set(id, now);
  }

  #sweep(now: number): void {
    for (const [id, entry] of this.#cache) if (now >= entry.until) this.#cache.delete(id);
    if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
  }
}

/** HGETALL of several keys in one round trip. */
export async function hashes(client: Redis, keys: string[]): Promise<Fields[]> {
  if (keys.length === 0) return [];
  const pipeline = client.pipeline();
  for (const key of keys) pipeline.hgetall(key);
  const results = (await pipeline.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value as Fields;
  });
}
