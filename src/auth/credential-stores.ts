// Where this process keeps API keys and users: the data dir's SQLite for one process, Redis (config
// redisUrl) for replicas that share them. The server and the `inferno security` CLI both start here.
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import type { SharedRedis } from "../shared/redis.js";
import { ApiKeyStore } from "./api-keys.js";
import { subscribeChanges } from "./auth-channel.js";
import { RedisApiKeyStore } from "./redis-api-keys.js";
import { RedisUserStore } from "./redis-users.js";
import type { ApiKeys, Users } from "./stores.js";
import { UserRoles } from "./user-roles.js";
import { UserStore } from "./users.js";

/** The stores of a server: keys, users, and the role cache JWTs are checked against. */
export interface CredentialStores {
  keys: ApiKeys;
  users: Users;
  roles: UserRoles;
  /** Resolves once changes announced by other replicas reach this one (at once for SQLite). */
  subscribed: Promise<void>;
  /** Writes what is pending (last-used times); before Redis closes. */
  close(): Promise<void>;
}

/** SQLite stores of the data dir's database. */
export function sqliteStores(db: Database.Database): CredentialStores {
  const users = new UserStore(db);
  // A JWT names its user; the role comes from the user store at request time (a demoted or deleted user's
  // tokens follow within seconds), as an API key's comes from its row.
  const roles = new UserRoles({ lookup: (username) => users.get(username)?.role });
  return { keys: new ApiKeyStore(db), users, roles, subscribed: Promise.resolve(), close: async () => undefined };
}

/**
 * Redis stores shared with the other replicas, with this replica's caches dropped as soon as any replica
 * (or the CLI) announces a change on the auth channel, and all of them when the subscriber reconnects.
 */
export function redisStores(redis: SharedRedis): CredentialStores {
  const keys = new RedisApiKeyStore(redis);
  const users = new RedisUserStore(redis);
  const roles = new UserRoles({ lookup: async (username) => (await users.get(username))?.role });
  const { subscribed } = subscribeChanges(redis, {
    changed: (change) => (change.kind === "key" ? keys.invalidate(change.id) : roles.invalidate(change.username)),
    reset: () => {
      keys.clear();
      roles.clear();
    },
  });
  return { keys, users, roles, subscribed, close: () => keys.close() };
}

/**
 * The JWT secret every replica signs with when config jwtSecret is unset: drawn by the first replica to
 * start, kept in Redis (`<prefix>auth:jwt-secret`), so a token from one replica is good on all.
 * Waits for Redis a little; a server that cannot reach it at start fails (set jwtSecret to start without).
 */
export async function sharedJwtSecret(redis: SharedRedis): Promise<string> {
  const key = `${redis.prefix}auth:jwt-secret`;
  await redis.waitReady().catch((err: Error) => {
    throw new Error(`${err.message}: the JWT secret is kept there (set jwtSecret to start without Redis)`);
  });
  await redis.run((c) => c.set(key, randomBytes(48).toString("base64url"), "NX"));
  const secret = await redis.run((c) => c.get(key));
  if (!secret) throw new Error(`${key} vanished from Redis while it was read`);
  return secret;
}
