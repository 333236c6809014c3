// The Lua scripts of the Redis-backed limits. A script runs atomically in Redis, so every replica sees
// one count; `admit` checks and counts a request's minute, hour, tokens and concurrency in one round trip.
// Every key a script writes gets a TTL: Redis holds only open windows and live leases.
// Times of concurrency leases come from Redis (TIME), so replicas' clocks need not agree.
import type { Redis } from "ioredis";

/** KEYS: rpm, rph, tpm, conc. ARGV: rpm max, rph max, tpm max, conc max, slot id, lease ms, minute ms, hour ms. */
const ADMIT = `
local function window(key, ms)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ms)
    ttl = ms
  end
  return n, ttl
end
local m, mttl = window(KEYS[1], tonumber(ARGV[7]))
if m > tonumber(ARGV[1]) then return {1, m, mttl, mttl} end
local h, httl = window(KEYS[2], tonumber(ARGV[8]))
if h > tonumber(ARGV[2]) then return {2, m, mttl, httl} end
local t = tonumber(redis.call('GET', KEYS[3]) or '0')
if t >= tonumber(ARGV[3]) then return {3, m, mttl, redis.call('PTTL', KEYS[3])} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return {4, m, mttl, 0} end
local lease = tonumber(ARGV[6])
redis.call('ZADD', KEYS[4], now + lease, ARGV[5])
if redis.call('PTTL', KEYS[4]) < lease then redis.call('PEXPIRE', KEYS[4], lease) end
return {0, m, mttl, 0}
`;

/** KEYS: the window. ARGV: window ms, amount. Returns {count, ttl ms}. */
const INCR_WINDOW = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

/** KEYS: the window. Returns {count, ttl ms}, or {0, -2} without an open window. */
const READ_WINDOW = `
local n = redis.call('GET', KEYS[1])
if not n then return {0, -2} end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
`;

/**
 * KEYS: one concurrency set. ARGV: lease ms, then the slot ids this replica holds in it. Extends the
 * leases of those still there (XX: a slot already reclaimed is not brought back) and the set's TTL.
 */
const REFRESH = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i]) end
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 0
`;

/** A reply of `admit`: outcome (0 admitted, 1-4 the refusing limit), minute count, minute ttl ms, wait ms. */
export type AdmitReply = [number, number, number, number];

/** The client with the scripts as commands (EVALSHA, falling back to EVAL after a Redis restart). */
export interface LimitScripts {
  infernoAdmit(rpm: string, rph: string, tpm: string, conc: string, ...args: Array<string | number>): Promise<AdmitReply>;
  infernoIncrWindow(key: string, windowMs: number, by: number): Promise<[number, number]>;
  infernoReadWindow(key: string): Promise<[number, number]>;
  infernoRefresh(conc: string, leaseMs: number, ...slots: string[]): Promise<number>;
}

/** Defines the scripts on `client` once (a client shared with other components may already have them). */
export function withLimitScripts(client: Redis): Redis & LimitScripts {
  const scripted = client as Redis & Partial<LimitScripts>;
  if (!scripted.infernoAdmit) {
    client.defineCommand("infernoAdmit", { numberOfKeys: 4, lua: ADMIT });
    client.defineCommand("infernoIncrWindow", { numberOfKeys: 1, lua: INCR_WINDOW });
    client.defineCommand("infernoReadWindow", { numberOfKeys: 1, lua: READ_WINDOW });
    client.defineCommand("infernoRefresh", { numberOfKeys: 1, lua: REFRESH });
  }
  return client as Redis & LimitScripts;
}
