// Password users in Redis, for replicas that share them (config redisUrl); the same hashing and answers
// as the SQLite store (users.ts). `<prefix>auth:user:<username>` is a hash (role, password_hash,
// created_ms) and `<prefix>auth:users` a sorted set of the names (all scored 0, so listed in byte order
// as SQLite lists them). A role change or deletion is published on the auth channel, so every replica
// drops its cached role at once (user-roles.ts).
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { SharedRedis } from "../shared/redis.js";
import { checkLabel, checkRole } from "./api-keys.js";
import { publishChange } from "./auth-channel.js";
import { checkPassword, decode, DEFAULT_SCRYPT, derive, encode, MAX_PASSWORD, sameParams, userExists, type ParsedHash, type ScryptParams } from "./passwords.js";
import type { Principal, Role } from "./principal.js";
import { hashes } from "./redis-api-keys.js";
import type { Users } from "./stores.js";
import type { UserInfo } from "./users.js";

// KEYS: the user's hash, the index. ARGV: username, role, password_hash, created_ms.
const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'role', ARGV[2], 'password_hash', ARGV[3], 'created_ms', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1`;
// KEYS: the user's hash. ARGV: field, value. Only an existing user is changed.
const SET_IF_EXISTS = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;
// KEYS: the user's hash. ARGV: old hash, new hash. Only if unchanged meanwhile.
const REHASH = `if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2])
return 1`;
// KEYS: the user's hash, the index. ARGV: username.
const DELETE = `redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])`;

type Fields = Record<string, string>;
const userInfo = (username: string, f: Fields): UserInfo => ({ username, role: f.role as Role, created: Math.floor(Number(f.created_ms) / 1000) });

export class RedisUserStore implements Users {
  readonly #redis: SharedRedis;
  readonly #params: ScryptParams;
  readonly #now: () => number;
  readonly #dummy: ParsedHash;

  constructor(redis: SharedRedis, options: { scrypt?: ScryptParams; now?: () => number } = {}) {
    this.#redis = redis;
    this.#params = { ...(options.scrypt ?? DEFAULT_SCRYPT) };
    this.#now = options.now ?? Date.now;
    this.#dummy = { params: this.#params, salt: randomBytes(16), hash: randomBytes(this.#params.keyLength) };
  }

  #key(username: string): string {
    return `${this.#redis.prefix}auth:user:${username}`;
  }

  get #index(): string {
    return `${this.#redis.prefix}auth:users`;
  }

  async create(username: string, password: string, role: Role = "user"): Promise<UserInfo> {
    checkLabel("username", username);
    checkRole(role);
    checkPassword(password);
    if ((await this.get(username)) !== undefined) throw userExists(username);
    const salt = randomBytes(16);
    const passwordHash = encode({ params: this.#params, salt, hash: await derive(password, salt, this.#params) });
    const created = this.#now();
    const inserted = await this.#redis.run((c) => c.eval(CREATE, 2, this.#key(username), this.#index, username, role, passwordHash, String(created)));
    // Checked again: another replica (or the CLI) may have taken the name while this one was hashing.
    if (inserted !== 1) throw userExists(username);
    return { username, role, created: Math.floor(created / 1000) };
  }

  async verify(username: string, password: string): Promise<Principal | undefined> {
    if (typeof username !== "string" || typeof password !== "string" || password.length > MAX_PASSWORD) return undefined;
    const f = username.length <= 512 ? await this.#redis.run((c) => c.hgetall(this.#key(username))) : {};
    const found = f.password_hash !== undefined;
    const stored = (found && decode(f.password_hash!)) || this.#dummy;
    const actual = await derive(password, stored.salt, stored.params);
    const ok = timingSafeEqual(actual, stored.hash) && found && stored !== this.#dummy;
    if (!ok) return undefined;
    if (!sameParams(stored.params, this.#params)) {
      const salt = randomBytes(16);
      const next = encode({ params: this.#params, salt, hash: await derive(password, salt, this.#params) });
      await this.#redis.run((c) => c.eval(REHASH, 1, this.#key(username), f.password_hash!, next));
    }
    return { user: username, role: f.role as Role, via: "jwt" };
  }

  async list(): Promise<UserInfo[]> {
    const names = await this.#redis.run((c) => c.zrange(this.#index, 0, -1));
    const rows = await this.#redis.run((c) => hashes(c, names.map((n) => this.#key(n))));
    return names.flatMap((n, i) => (Object.keys(rows[i]!).length > 0 ? [userInfo(n, rows[i]!)] : []));
  }

  async get(username: string): Promise<UserInfo | undefined> {
    const f = await this.#redis.run((c) => c.hgetall(this.#key(username)));
    return f.role === undefined ? undefined : userInfo(username, f);
  }

  async setRole(username: string, role: Role): Promise<UserInfo | undefined> {
    checkRole(role);
    const changed = await this.#redis.run((c) => c.eval(SET_IF_EXISTS, 1, this.#key(username), "role", role));
    if (changed !== 1) return undefined;
    await publishChange(this.#redis, { kind: "user", username });
    return this.get(username);
  }

  async delete(username: string): Promise<boolean> {
    const deleted = await this.#redis.run((c) => c.eval(DELETE, 2, this.#key(username), this.#index, username));
    if (deleted !== 1) return false;
    await publishChange(this.#redis, { kind: "user", username });
    return true;
  }
}
