import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import type Database from "better-sqlite3";
import { z } from "zod";
import { InfernoError } from "../errors/catalogue.js";
import { migrate } from "../store/database.js";
import type { Principal, RateLimits, Role } from "./principal.js";
import type { ApiKeys } from "./stores.js";

const MIGRATIONS = [
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     user TEXT NOT NULL,
     name TEXT NOT NULL,
     role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
     secret_sha256 BLOB NOT NULL,
     limits TEXT,
     created_ms INTEGER NOT NULL,
     expires_ms INTEGER,
     revoked_ms INTEGER,
     last_used_ms INTEGER
   ) STRICT;
   CREATE INDEX api_keys_user ON api_keys (user);`,
];

/** An API key as listed: everything but the secret. Times are unix seconds, null when not set. */
export interface ApiKeyInfo {
  id: string;
  user: string;
  name: string;
  role: Role;
  created: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  limits: Partial<RateLimits> | null;
}

/** A key as created: the only time the full key exists outside its holder. */
export interface CreatedApiKey {
  id: string;
  key: string;
  user: string;
  name: string;
  role: Role;
  created: number;
  expires_at: number | null;
}

export interface CreateApiKeyInput {
  user: string;
  name: string;
  role?: Role;
  /** Lifetime in milliseconds; the key never expires without one. */
  expiresInMs?: number;
  limits?: Partial<RateLimits>;
}

interface Row {
  id: string;
  user: string;
  name: string;
  role: Role;
  secret_sha256: Buffer;
  limits: string | null;
  created_ms: number;
  expires_ms: number | null;
  revoked_ms: number | null;
  last_used_ms: number | null;
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const ID_LENGTH = 12;
// inf_<12 alphanumerics>_<32 bytes in base64url, 43 chars>. The secret is hashed as the text the client
// sends, not as decoded bytes: base64url decoding ignores junk and the last char's spare bits.
const KEY_PATTERN = /^inf_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
/** last_used_at is a hint, so a key is written at most this often rather than on every request. */
export const TOUCH_INTERVAL_MS = 60_000;

const limitsSchema = z
  .object({
    requestsPerMinute: z.number().int().positive(),
    requestsPerHour: z.number().int().positive(),
    tokensPerMinute: z.number().int().positive(),
    concurrentRequests: z.number().int().positive(),
  })
  .partial()
  .strict();

/** 1-128 printable characters, no leading or trailing space (shared with the user store). */
export function checkLabel(what: string, value: unknown): string {
  if (typeof value !== "string" || !/^[^\p{C}]{1,128}$/u.test(value) || value.trim() !== value) {
    throw new InfernoError("INVALID_REQUEST", `${what} must be 1-128 printable characters without leading or trailing spaces`, undefined, { param: what });
  }
  return value;
}

export function checkRole(value: unknown): Role {
  if (value !== "admin" && value !== "user") throw new InfernoError("INVALID_REQUEST", "role must be 'admin' or 'user'", undefined, { param: "role" });
  return value;
}

/** The digest a key's secret is kept as (every store hashes the same way). */
export const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest();
export const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

/** The id and secret of a well-formed key (`inf_<id>_<secret>`), else undefined. */
export function parseKey(key: string): { id: string; secret: string } | undefined {
  const m = KEY_PATTERN.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Whether a presented secret matches the stored digest, in constant time. */
export function secretMatches(stored: Buffer, secret: string): boolean {
  const presented = sha256(secret);
  return stored.length === presented.length && timingSafeEqual(stored, presented);
}

/** A new key's parts once its input is checked: what every store writes. */
export interface NewApiKey {
  id: () => string;
  user: string;
  name: string;
  role: Role;
  /** JSON of the limits, null without any. */
  limits: string | null;
  createdMs: number;
  expiresMs: number | null;
  secret: string;
}

/** Checks a create request and draws the secret; `id()` draws an id (call again on a clash). */
export function newApiKey(input: CreateApiKeyInput, now: number): NewApiKey {
  const user = checkLabel("user", input.user);
  const name = checkLabel("name", input.name);
  const role = checkRole(input.role ?? "user");
  const { expiresInMs } = input;
  if (expiresInMs !== undefined && !(Number.isSafeInteger(expiresInMs) && expiresInMs > 0)) {
    throw new InfernoError("INVALID_REQUEST", "expiry must be a positive number of milliseconds", undefined, { param: "expires_in" });
  }
  const parsedLimits = limitsSchema.safeParse(input.limits ?? {});
  if (!parsedLimits.success) {
    throw new InfernoError("INVALID_REQUEST", `invalid limits: ${parsedLimits.error.issues[0]?.message ?? "bad value"}`, undefined, { param: "limits" });
  }
  const limits = Object.keys(parsedLimits.data).length > 0 ? JSON.stringify(parsedLimits.data) : null;
  const expiresMs = expiresInMs === undefined ? null : now + expiresInMs;
  return { id: newId, user, name, role, limits, createdMs: now, expiresMs, secret: randomBytes(32).toString("base64url") };
}

/** What a created key is reported as (the only time its full text exists outside its holder). */
export function createdKey(k: NewApiKey, id: string): CreatedApiKey {
  return { id, key: `inf_${id}_${k.secret}`, user: k.user, name: k.name, role: k.role, created: Math.floor(k.createdMs / 1000), expires_at: seconds(k.expiresMs) };
}

/** The principal of a verified key. */
export function keyPrincipal(id: string, user: string, role: Role, limits: string | null): Principal {
  const principal: Principal = { user, role, via: "api-key", keyId: id };
  if (limits !== null) principal.limits = JSON.parse(limits) as Partial<RateLimits>;
  return principal;
}

function newId(): string {
  let id = "";
  for (let i = 0; i < ID_LENGTH; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

function info(row: Row): ApiKeyInfo {
  return {
    id: row.id,
    user: row.user,
    name: row.name,
    role: row.role,
    created: Math.floor(row.created_ms / 1000),
    expires_at: seconds(row.expires_ms),
    revoked_at: seconds(row.revoked_ms),
    last_used_at: seconds(row.last_used_ms),
    limits: row.limits === null ? null : (JSON.parse(row.limits) as Partial<RateLimits>),
  };
}

/** API keys kept in the database as sha256 of their secret; the key itself is shown once, at creation. */
export class ApiKeyStore implements ApiKeys {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #byId: Database.Statement<[string], Row>;
  readonly #touch: Database.Statement<[number, string, number]>;

  constructor(db: Database.Database, options: { now?: () => number } = {}) {
    migrate(db, "api-keys", MIGRATIONS);
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#byId = db.prepare("SELECT * FROM api_keys WHERE id = ?");
    this.#touch = db.prepare("UPDATE api_keys SET last_used_ms = ? WHERE id = ? AND coalesce(last_used_ms, 0) <= ?");
  }

  create(input: CreateApiKeyInput): CreatedApiKey {
    const k = newApiKey(input, this.#now());
    const insert = this.#db.prepare(
      `INSERT INTO api_keys (id, user, name, role, secret_sha256, limits, created_ms, expires_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    );
    // 62^12 ids make a clash all but impossible; retrying keeps it from ever being an error.
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = k.id();
      if (insert.run(id, k.user, k.name, k.role, sha256(k.secret), k.limits, k.createdMs, k.expiresMs).changes === 1) return createdKey(k, id);
    }
    throw new InfernoError("INTERNAL_ERROR", "could not allocate an API key id");
  }

  /** Every key, oldest first (or one user's); never the secrets. */
  list(filter: { user?: string } = {}): ApiKeyInfo[] {
    const rows =
      filter.user === undefined
        ? this.#db.prepare<[], Row>("SELECT * FROM api_keys ORDER BY created_ms, id").all()
        : this.#db.prepare<[string], Row>("SELECT * FROM api_keys WHERE user = ? ORDER BY created_ms, id").all(filter.user);
    return rows.map(info);
  }

  get(id: string): ApiKeyInfo | undefined {
    const row = this.#byId.get(id);
    return row && info(row);
  }

  /** Revokes a key; revoking it again keeps the first revocation time. Undefined when no key has this id. */
  revoke(id: string): ApiKeyInfo | undefined {
    this.#db.prepare("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL").run(this.#now(), id);
    return this.get(id);
  }

  /** The principal a presented key stands for, or undefined for a malformed, unknown, wrong, revoked or expired key. */
  verify(key: string): Principal | undefined {
    const parsed = parseKey(key);
    if (!parsed) return undefined;
    const row = this.#byId.get(parsed.id);
    if (!row || !secretMatches(row.secret_sha256, parsed.secret)) return undefined;
    const now = this.#now();
    if (row.revoked_ms !== null || (row.expires_ms !== null && now >= row.expires_ms)) return undefined;
    if (row.last_used_ms === null || now - row.last_used_ms >= TOUCH_INTERVAL_MS) {
      try {
        this.#touch.run(now, row.id, now - TOUCH_INTERVAL_MS);
      } catch {
        // A busy database (the CLI writing) must not turn a valid key away; the next minute tries again.
      }
    }
    return keyPrincipal(row.id, row.user, row.role, row.limits);
  }
}
