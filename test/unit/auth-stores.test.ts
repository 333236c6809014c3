// The credential stores behind auth: API keys (hashed at rest, revocable, expiring), password users
// (scrypt) and the HS256 JWT issuer. Needs no model and no server; every store gets a temp data dir.
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import type Database from "better-sqlite3";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { JwtIssuer } from "../../src/auth/jwt.js";
import { UserStore } from "../../src/auth/users.js";
import { ConfigError } from "../../src/config/config.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { migrate, openDatabase } from "../../src/store/database.js";
import { tempDir } from "../helpers/paths.js";

let root: string;
let cleanup: () => Promise<void>;
let count = 0;
const open: Database.Database[] = [];

before(async () => {
  ({ dir: root, cleanup } = await tempDir("inferno-auth-"));
});
after(async () => {
  for (const db of open) if (db.open) db.close();
  await cleanup();
});

/** A fresh data dir and its open database. */
function freshDb(): { dataDir: string; db: Database.Database } {
  const dataDir = path.join(root, `d${++count}`);
  const db = openDatabase(dataDir);
  open.push(db);
  return { dataDir, db };
}

/** A clock the test moves by hand. */
function fakeClock(start = Date.UTC(2025, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function invalidRequest(err: unknown): boolean {
  return err instanceof InfernoError && err.code === "INVALID_REQUEST";
}

describe("database", () => {
  it("opens in WAL mode with foreign keys, and migrates each component once", () => {
    const { dataDir, db } = freshDb();
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.pragma("foreign_keys", { simple: true }), 1);
    assert.equal(migrate(db, "demo", ["CREATE TABLE a (x INTEGER)"]), 1);
    assert.equal(migrate(db, "demo", ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)"]), 2);
    assert.equal(migrate(db, "demo", ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)"]), 2);
    assert.throws(() => migrate(db, "demo", ["CREATE TABLE a (x INTEGER)"]), /newer than this Inferno knows/);
    // A failing step rolls back whole: the version stays and the half of it that ran is undone.
    assert.throws(() => migrate(db, "other", ["CREATE TABLE c (z INTEGER); CREATE TABLE c (z INTEGER)"]));
    assert.equal(migrate(db, "other", []), 0);
    assert.deepEqual(db.prepare("SELECT name FROM sqlite_master WHERE name = 'c'").all(), []);
    assert.ok(existsSync(path.join(dataDir, "inferno.db")));
  });
});

describe("ApiKeyStore", () => {
  it("creates a key that verifies to its principal, and lists it without the key", () => {
    const { db } = freshDb();
    const clock = fakeClock();
    const keys = new ApiKeyStore(db, clock);
    const k = keys.create({ user: "alice", name: "My API Key", role: "admin" });
    assert.match(k.key, /^inf_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    assert.equal(k.key.slice(4, 16), k.id);
    assert.deepEqual({ ...k, key: undefined }, { id: k.id, key: undefined, user: "alice", name: "My API Key", role: "admin", created: clock.now() / 1000, expires_at: null });
    assert.deepEqual(keys.verify(k.key), { user: "alice", role: "admin", via: "api-key", keyId: k.id });
    const [listed, ...rest] = keys.list();
    assert.equal(rest.length, 0);
    assert.equal(listed?.id, k.id);
    assert.equal(listed?.last_used_at, clock.now() / 1000);
    assert.ok(!JSON.stringify(keys.list()).includes(k.key.slice(17)), "list must not reveal the secret");
    assert.equal(keys.create({ user: "bob", name: "k" }).role, "user");
    assert.deepEqual(keys.list({ user: "bob" }).map((x) => x.user), ["bob"]);
  });

  it("keeps only a hash of the secret: the database files never hold the key", async () => {
    const { dataDir, db } = freshDb();
    const keys = new ApiKeyStore(db);
    const created = [keys.create({ user: "u", name: "n" }), keys.create({ user: "u", name: "m", limits: { requestsPerMinute: 5 } })];
    const files = ["inferno.db", "inferno.db-wal", "inferno.db-shm"].map((f) => path.join(dataDir, f));
    const check = async () => {
      for (const file of files.filter(existsSync)) {
        const bytes = await readFile(file);
        for (const { key } of created) {
          assert.ok(!bytes.includes(key.slice(17)), `secret found in ${path.basename(file)}`);
          assert.ok(!bytes.includes(Buffer.from(key.slice(17), "base64url")), `secret bytes found in ${path.basename(file)}`);
        }
      }
    };
    assert.ok(existsSync(files[1]!), "the write should sit in the WAL while the database is open");
    await check();
    db.close(); // checkpoints the WAL into the main file
    await check();
    assert.equal((await stat(files[0]!)).mode & 0o777, 0o600);
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
  });

  it("refuses a tampered key, an unknown id and malformed keys", () => {
    const { db } = freshDb();
    const keys = new ApiKeyStore(db);
    const { key } = keys.create({ user: "u", name: "n" });
    for (let i = 17; i < key.length; i += 7) {
      const c = key[i] === "A" ? "B" : "A";
      assert.equal(keys.verify(key.slice(0, i) + c + key.slice(i + 1)), undefined, `changed char ${i}`);
    }
    const last = key.at(-1) === "A" ? "B" : "A"; // the last char carries two spare bits: still refused
    assert.equal(keys.verify(key.slice(0, -1) + last), undefined);
    assert.equal(keys.verify(`inf_ZZZZZZZZZZZZ${key.slice(16)}`), undefined);
    for (const bad of ["", "inf_", key + "x", key.slice(0, -1), key.replace("inf_", "sk_"), ` ${key}`, key.slice(17)]) {
      assert.equal(keys.verify(bad), undefined, JSON.stringify(bad));
    }
    assert.ok(keys.verify(key));
  });

  it("revokes idempotently and reports unknown ids", () => {
    const { db } = freshDb();
    const clock = fakeClock();
    const keys = new ApiKeyStore(db, clock);
    const { id, key } = keys.create({ user: "u", name: "n" });
    const first = keys.revoke(id);
    assert.equal(first?.revoked_at, clock.now() / 1000);
    assert.equal(keys.verify(key), undefined);
    clock.advance(5000);
    assert.equal(keys.revoke(id)?.revoked_at, first?.revoked_at);
    assert.equal(keys.revoke("nosuchkey123"), undefined);
    assert.equal(keys.list()[0]?.revoked_at, first?.revoked_at);
  });

  it("expires keys at their expiry time", () => {
    const { db } = freshDb();
    const clock = fakeClock();
    const keys = new ApiKeyStore(db, clock);
    const k = keys.create({ user: "u", name: "n", expiresInMs: 3_600_000 });
    assert.equal(k.expires_at, clock.now() / 1000 + 3600);
    clock.advance(3_599_999);
    assert.ok(keys.verify(k.key));
    clock.advance(1);
    assert.equal(keys.verify(k.key), undefined);
  });

  it("touches last_used_at at most once a minute", () => {
    const { db } = freshDb();
    const clock = fakeClock();
    const keys = new ApiKeyStore(db, clock);
    const { id, key } = keys.create({ user: "u", name: "n" });
    const start = clock.now() / 1000;
    const lastUsed = () => keys.get(id)?.last_used_at;
    assert.equal(lastUsed(), null);
    keys.verify(key);
    assert.equal(lastUsed(), start);
    clock.advance(59_000);
    keys.verify(key);
    assert.equal(lastUsed(), start);
    clock.advance(1_000);
    keys.verify(key);
    assert.equal(lastUsed(), start + 60);
  });

  it("round-trips per-key limits and rejects bad ones", () => {
    const { db } = freshDb();
    const keys = new ApiKeyStore(db);
    const limits = { requestsPerMinute: 5, tokensPerMinute: 1000 };
    const k = keys.create({ user: "u", name: "n", limits });
    assert.deepEqual(keys.verify(k.key)?.limits, limits);
    assert.deepEqual(keys.get(k.id)?.limits, limits);
    assert.equal(keys.verify(keys.create({ user: "u", name: "plain" }).key)?.limits, undefined);
    assert.throws(() => keys.create({ user: "u", name: "n", limits: { requestsPerMinute: 0 } }), invalidRequest);
    assert.throws(() => keys.create({ user: "u", name: "n", limits: { bogus: 1 } as never }), invalidRequest);
  });

  it("validates user, name, role and expiry", () => {
    const { db } = freshDb();
    const keys = new ApiKeyStore(db);
    for (const user of ["", "x".repeat(129), "a\nb", "tab\there", " padded"]) {
      assert.throws(() => keys.create({ user, name: "n" }), invalidRequest, JSON.stringify(user));
    }
    assert.throws(() => keys.create({ user: "u", name: "\u0000" }), invalidRequest);
    assert.throws(() => keys.create({ user: "u", name: "n", role: "root" as never }), invalidRequest);
    assert.throws(() => keys.create({ user: "u", name: "n", expiresInMs: 0 }), invalidRequest);
    assert.equal(keys.create({ user: "x".repeat(128), name: "Ünïcode ✓ name" }).name, "Ünïcode ✓ name");
    assert.equal(keys.list().length, 1);
  });
});

describe("UserStore", () => {
  it("creates users and verifies their passwords", async () => {
    const { db } = freshDb();
    const users = new UserStore(db);
    const u = await users.create("alice", "correct horse", "admin");
    assert.equal(u.username, "alice");
    assert.deepEqual(await users.verify("alice", "correct horse"), { user: "alice", role: "admin", via: "jwt" });
    assert.equal(await users.verify("alice", "correct hors"), undefined);
    assert.equal(await users.verify("alice", "Correct horse"), undefined);
    assert.equal(await users.verify("nobody", "correct horse"), undefined);
    assert.equal(await users.verify("ALICE", "correct horse"), undefined);
    assert.deepEqual(users.list().map((x) => [x.username, x.role]), [["alice", "admin"]]);
    const row = db.prepare<[], { password_hash: string }>("SELECT password_hash FROM users").get();
    assert.match(row!.password_hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{86}$/);
    assert.ok(users.delete("alice"));
    assert.ok(!users.delete("alice"));
    assert.equal(await users.verify("alice", "correct horse"), undefined);
  });

  it("refuses a duplicate username, a short password and a bad role", async () => {
    const { db } = freshDb();
    const users = new UserStore(db, { scrypt: { logN: 10, r: 8, p: 1, keyLength: 64 } });
    await users.create("bob", "12345678");
    await assert.rejects(users.create("bob", "another password"), (e) => e instanceof InfernoError && e.code === "USER_EXISTS" && /already exists/.test((e as Error).message));
    await assert.rejects(users.create("carol", "1234567"), (e) => invalidRequest(e) && /at least 8/.test((e as Error).message));
    await assert.rejects(users.create("", "12345678"), invalidRequest);
    await assert.rejects(users.create("dave", "12345678", "root" as never), invalidRequest);
    assert.deepEqual(users.list().map((x) => x.username), ["bob"]);
  });

  it("spends a full hash on an unknown username", async () => {
    const { db } = freshDb();
    const users = new UserStore(db);
    await users.create("erin", "password1");
    const time = async (name: string) => {
      const t0 = performance.now();
      await users.verify(name, "wrong password");
      return performance.now() - t0;
    };
    const known = Math.min(await time("erin"), await time("erin"));
    const unknown = Math.min(await time("nobody"), await time("nobody"));
    assert.ok(unknown > known * 0.5, `unknown user took ${unknown.toFixed(1)} ms, a known one ${known.toFixed(1)} ms`);
  });

  it("re-hashes with raised parameters at the next successful login", async () => {
    const { db } = freshDb();
    await new UserStore(db, { scrypt: { logN: 10, r: 8, p: 1, keyLength: 64 } }).create("frank", "password1");
    const hash = () => db.prepare<[], { password_hash: string }>("SELECT password_hash FROM users").get()!.password_hash;
    assert.match(hash(), /^\$scrypt\$ln=10,/);
    const users = new UserStore(db);
    assert.equal(await users.verify("frank", "wrong password"), undefined);
    assert.match(hash(), /^\$scrypt\$ln=10,/);
    assert.ok(await users.verify("frank", "password1"));
    assert.match(hash(), /^\$scrypt\$ln=15,r=8,p=1\$/);
    assert.ok(await users.verify("frank", "password1"));
  });
});

describe("JwtIssuer", () => {
  const secret = "s".repeat(40);

  it("signs HS256 tokens that verify to the principal", () => {
    const issuer = new JwtIssuer({ secret, dataDir: root, expiresIn: "1h" });
    const { token, expires_in } = issuer.sign({ user: "alice", role: "admin" });
    assert.equal(expires_in, 3600);
    assert.deepEqual(issuer.verify(token), { user: "alice", role: "admin", via: "jwt" });
    const decoded = jwt.decode(token, { complete: true })!;
    assert.equal(decoded.header.alg, "HS256");
    const p = decoded.payload as jwt.JwtPayload;
    assert.deepEqual([p.sub, p.role, p.iss, p.exp! - p.iat!], ["alice", "admin", "inferno", 3600]);
    assert.equal(new JwtIssuer({ secret, dataDir: root, expiresIn: 90 }).sign({ user: "a", role: "user" }).expires_in, 90);
  });

  it("refuses expired tokens", () => {
    const clock = fakeClock();
    const issuer = new JwtIssuer({ secret, dataDir: root, expiresIn: "30m", now: clock.now });
    const { token } = issuer.sign({ user: "u", role: "user" });
    clock.advance(30 * 60_000 - 1000);
    assert.ok(issuer.verify(token));
    clock.advance(1000);
    assert.equal(issuer.verify(token), undefined);
  });

  it("refuses tampered, unsigned, foreign-key, other-algorithm and other-issuer tokens", () => {
    const issuer = new JwtIssuer({ secret, dataDir: root, expiresIn: "1h" });
    const { token } = issuer.sign({ user: "u", role: "user" });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: "u", role: "admin", iat: now, exp: now + 600, iss: "inferno" };
    const hmac = (alg: "sha256" | "sha512", h: unknown, p: unknown, key = secret) => {
      const body = `${b64url(h)}.${b64url(p)}`;
      return `${body}.${createHmac(alg, key).update(body).digest("base64url")}`;
    };
    assert.ok(issuer.verify(hmac("sha256", { alg: "HS256", typ: "JWT" }, claims)), "the hand-made control token should verify");
    const flipped = signature[0] === "A" ? "B" : "A";
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const refused: Record<string, string> = {
      "changed signature": `${header}.${payload}.${flipped}${signature.slice(1)}`,
      "changed payload": `${header}.${b64url({ ...jwt.decode(token) as object, role: "admin" })}.${signature}`,
      "alg none": `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`,
      "alg none, no dot": `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}`,
      "wrong secret": hmac("sha256", { alg: "HS256", typ: "JWT" }, claims, "x".repeat(40)),
      HS512: hmac("sha512", { alg: "HS512", typ: "JWT" }, claims),
      RS256: jwt.sign(claims, privateKey, { algorithm: "RS256" }),
      "wrong issuer": hmac("sha256", { alg: "HS256", typ: "JWT" }, { ...claims, iss: "evil" }),
      "no issuer": hmac("sha256", { alg: "HS256", typ: "JWT" }, { ...claims, iss: undefined }),
      "no expiry": hmac("sha256", { alg: "HS256", typ: "JWT" }, { ...claims, exp: undefined }),
      "unknown role": hmac("sha256", { alg: "HS256", typ: "JWT" }, { ...claims, role: "root" }),
      "no subject": hmac("sha256", { alg: "HS256", typ: "JWT" }, { ...claims, sub: undefined }),
      garbage: "not.a.jwt",
      empty: "",
    };
    for (const [what, bad] of Object.entries(refused)) assert.equal(issuer.verify(bad), undefined, what);
  });

  it("generates a secret once, 0600, and reuses it across instances", async () => {
    const { dataDir } = freshDb();
    const a = new JwtIssuer({ dataDir, expiresIn: "1h" });
    const file = path.join(dataDir, "jwt-secret");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const stored = await readFile(file, "utf8");
    assert.equal(Buffer.from(stored.trim(), "base64url").length, 48);
    const b = new JwtIssuer({ dataDir, expiresIn: "1h" });
    assert.equal(await readFile(file, "utf8"), stored);
    assert.ok(b.verify(a.sign({ user: "u", role: "user" }).token));
    assert.equal(new JwtIssuer({ secret, dataDir, expiresIn: "1h" }).verify(a.sign({ user: "u", role: "user" }).token), undefined);
    // The generated secret, given as jwtSecret, makes the same tokens.
    assert.ok(new JwtIssuer({ secret: stored.trim(), dataDir: root, expiresIn: "1h" }).verify(a.sign({ user: "u", role: "user" }).token));
  });

  it("rejects a lifetime that is not a positive duration", () => {
    for (const expiresIn of ["soon", -1, 0, "0s", "500ms"]) {
      assert.throws(() => new JwtIssuer({ secret, dataDir: root, expiresIn }), ConfigError, String(expiresIn));
    }
  });
});
