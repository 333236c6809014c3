// What auth needs from wherever credentials are kept: SQLite in the data dir for one process (synchronous,
// api-keys.ts and users.ts), Redis for several replicas (redis-api-keys.ts, redis-users.ts). Callers
// await every answer, so either kind fits.
import type { ApiKeyInfo, CreateApiKeyInput, CreatedApiKey } from "./api-keys.js";
import type { Principal, Role } from "./principal.js";
import type { UserInfo } from "./users.js";

/** A value now (SQLite) or later (Redis). */
export type Awaitable<T> = T | Promise<T>;

/** API keys: created, listed, revoked and verified. */
export interface ApiKeys {
  create(input: CreateApiKeyInput): Awaitable<CreatedApiKey>;
  list(filter?: { user?: string }): Awaitable<ApiKeyInfo[]>;
  get(id: string): Awaitable<ApiKeyInfo | undefined>;
  /** Undefined when no key has this id; revoking again keeps the first revocation time. */
  revoke(id: string): Awaitable<ApiKeyInfo | undefined>;
  /** The principal of a valid key, undefined for any other; throws the coded 503 when the store is unreachable. */
  verify(key: string): Awaitable<Principal | undefined>;
}

/** Password users (for JWTs). */
export interface Users {
  create(username: string, password: string, role?: Role): Promise<UserInfo>;
  verify(username: string, password: string): Promise<Principal | undefined>;
  list(): Awaitable<UserInfo[]>;
  get(username: string): Awaitable<UserInfo | undefined>;
  setRole(username: string, role: Role): Awaitable<UserInfo | undefined>;
  /** True when the user existed. */
  delete(username: string): Awaitable<boolean>;
}
