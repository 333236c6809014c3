import { randomBytes, timingSafeEqual } from "node:crypto";
import type Database from "better-sqlite3";
import { migrate } from "../store/database.js";
import { checkLabel, checkRole } from "./api-keys.js";
import { checkPassword, decode, DEFAULT_SCRYPT, derive, encode, MAX_PASSWORD, sameParams, userExists, type ParsedHash, type ScryptParams } from "./passwords.js";
import type { Principal, Role } from "./principal.js";
import type { Users } from "./stores.js";

export { DEFAULT_SCRYPT, type ScryptParams } from "./passwords.js";

const MIGRATIONS = [
  `CREATE TABLE users (
     username TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
     password_hash TEXT NOT NULL,
     created_ms INTEGER NOT NULL
   ) STRICT;`,
];

/** A user as listed (no hash). `created` is unix seconds. */
export interface UserInfo {
  username: string;
  role: Role;
  created: number;
}

interface Row {
  username: string;
  role: Role;
  password_hash: string;
  created_ms: number;
}

/** Users who log in with a password (for JWTs); passwords are kept as salted scrypt hashes. */
export class UserStore implements Users {
  readonly #db: Database.Database;
  readonly #params: ScryptParams;
  readonly #now: () => number;
  /** Hashed against when the username is unknown, so a miss costs what a wrong password costs. */
  readonly #dummy: ParsedHash;

  constructor(db: Database.Database, options: { scrypt?: ScryptParams; now?: () => number } = {}) {
    migrate(db, "users", MIGRATIONS);
    this.#db = db;
    this.#params = { ...(options.scrypt ?? DEFAULT_SCRYPT) };
    this.#now = options.now ?? Date.now;
    this.#dummy = { params: this.#params, salt: randomBytes(16), hash: randomBytes(this.#params.keyLength) };
  }

  async create(username: string, password: string, role: Role = "user"): Promise<UserInfo> {
    checkLabel("username", username);
    checkRole(role);
    checkPassword(password);
    if (this.#row(username)) throw userExists(username);
    const salt = randomBytes(16);
    const passwordHash = encode({ params: this.#params, salt, hash: await derive(password, salt, this.#params) });
    const created = this.#now();
    const inserted = this.#db
      .prepare("INSERT INTO users (username, role, password_hash, created_ms) VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING")
      .run(username, role, passwordHash, created);
    // Checked again: another create (or the CLI) may have taken the name while this one was hashing.
    if (inserted.changes === 0) throw userExists(username);
    return { username, role, created: Math.floor(created / 1000) };
  }

  /** The principal for a correct username and password, else undefined, in about the same time either way. */
  async verify(username: string, password: string): Promise<Principal | undefined> {
    if (typeof username !== "string" || typeof password !== "string" || password.length > MAX_PASSWORD) return undefined;
    const row = username.length <= 512 ? this.#row(username) : undefined;
    const stored = (row && decode(row.password_hash)) ?? this.#dummy;
    const actual = await derive(password, stored.salt, stored.params);
    const ok = timingSafeEqual(actual, stored.hash) && row !== undefined && stored !== this.#dummy;
    if (!ok) return undefined;
    if (!sameParams(stored.params, this.#params)) await this.#rehash(row.username, row.password_hash, password);
    return { user: row.username, role: row.role, via: "jwt" };
  }

  list(): UserInfo[] {
    const rows = this.#db.prepare<[], Row>("SELECT * FROM users ORDER BY username").all();
    return rows.map((r) => ({ username: r.username, role: r.role, created: Math.floor(r.created_ms / 1000) }));
  }

  get(username: string): UserInfo | undefined {
    const r = this.#row(username);
    return r && { username: r.username, role: r.role, created: Math.floor(r.created_ms / 1000) };
  }

  /** Changes a user's role; undefined when there is no such user. Signed-in users get it within seconds (user-roles.ts). */
  setRole(username: string, role: Role): UserInfo | undefined {
    checkRole(role);
    this.#db.prepare("UPDATE users SET role = ? WHERE username = ?").run(role, username);
    return this.get(username);
  }

  /** True when the user existed. */
  delete(username: string): boolean {
    return this.#db.prepare("DELETE FROM users WHERE username = ?").run(username).changes === 1;
  }

  #row(username: string): Row | undefined {
    return this.#db.prepare<[string], Row>("SELECT * FROM users WHERE username = ?").get(username);
  }

  async #rehash(username: string, old: string, password: string): Promise<void> {
    const salt = randomBytes(16);
    const next = encode({ params: this.#params, salt, hash: await derive(password, salt, this.#params) });
    // Only if unchanged meanwhile, so a password set during the hashing is not overwritten.
    this.#db.prepare("UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?").run(next, username, old);
  }
}
