import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type Database from "better-sqlite3";
import { InfernoError } from "../errors/catalogue.js";
import { migrate } from "../store/database.js";
import { checkLabel, checkRole } from "./api-keys.js";
import type { Principal, Role } from "./principal.js";

const MIGRATIONS = [
  `CREATE TABLE users (
     username TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
     password_hash TEXT NOT NULL,
     created_ms INTEGER NOT NULL
   ) STRICT;`,
];

/** scrypt cost: N = 2^logN. Kept with every hash, so raising it later re-hashes each user at their next login. */
export interface ScryptParams {
  logN: number;
  r: number;
  p: number;
  keyLength: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ logN: 15, r: 8, p: 1, keyLength: 64 });

/** A user as listed (no hash). `created` is unix seconds. */
export interface UserInfo {
  username: string;
  role: Role;
  created: number;
}

const MIN_PASSWORD = 8;
// Long enough for any passphrase; a cap keeps a megabyte "password" from being hashed.
const MAX_PASSWORD = 1024;

interface Row {
  username: string;
  role: Role;
  password_hash: string;
  created_ms: number;
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  // Node refuses anything over maxmem (32 MiB by default), and 128·N·r is exactly 32 MiB at the defaults.
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 2 * 128 * N * params.r * params.p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, params.keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** PHC-style text: $scrypt$ln=15,r=8,p=1$<salt>$<hash> (base64 without padding). */
function encode({ params, salt, hash }: ParsedHash): string {
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

function decode(text: string): ParsedHash | undefined {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(text);
  if (!m) return undefined;
  const hash = Buffer.from(m[5]!, "base64");
  return { params: { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]), keyLength: hash.length }, salt: Buffer.from(m[4]!, "base64"), hash };
}

const sameParams = (a: ScryptParams, b: ScryptParams) => a.logN === b.logN && a.r === b.r && a.p === b.p && a.keyLength === b.keyLength;

/** Users who log in with a password (for JWTs); passwords are kept as salted scrypt hashes. */
export class UserStore {
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

function checkPassword(password: unknown): void {
  if (typeof password !== "string" || password.length < MIN_PASSWORD) {
    throw new InfernoError("INVALID_REQUEST", `password must be at least ${MIN_PASSWORD} characters`, undefined, { param: "password" });
  }
  if (password.length > MAX_PASSWORD) {
    throw new InfernoError("INVALID_REQUEST", `password must be at most ${MAX_PASSWORD} characters`, undefined, { param: "password" });
  }
}

// No USER_EXISTS code in the catalogue yet: a 400 naming the conflict until one is added.
const userExists = (username: string) => new InfernoError("USER_EXISTS", `user '${username}' already exists`, { username }, { param: "username" });
