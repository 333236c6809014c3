// Folding of failed authentication in the audit log, with a fake clock and an in-memory database:
// bounded rows for any flood, counts that add up, and no secret ever kept. Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import Database from "better-sqlite3";
import { AuditLog } from "../../src/audit/audit-log.js";
import { AuthFailureLog, credentialHint } from "../../src/audit/auth-failures.js";
import { redactConfig } from "../../src/audit/redact-config.js";

function setup(maxKeys = 1000) {
  const db = new Database(":memory:");
  const log = new AuditLog(db, "r1");
  let now = Date.UTC(2025, 0, 1, 12, 0, 0);
  const failures = new AuthFailureLog(log, () => now, maxKeys);
  return { db, log, failures, advance: (ms: number) => void (now += ms), rows: () => log.query({ limit: 100_000 }) };
}

test("one source's flood: the first row at once, its repeats as one row per minute with their count", () => {
  const { failures, advance, rows } = setup();
  const fail = () => failures.record({ type: "auth.failure", transport: "http", source: "10.0.0.1", reason: "invalid_credentials", token: "inf_AAAAAAAAAAAA_secret" });
  fail();
  assert.equal(rows().length, 1, "the first failure is visible at once");
  for (let i = 0; i < 999; i++) fail();
  assert.equal(rows().length, 1, "repeats wait for the minute's end");
  advance(60_000);
  fail(); // the next minute: flushes the last one, and is its own first row
  failures.flush();
  const all = rows();
  assert.deepEqual(all.map((e) => e.count), [1, 999, 1]);
  assert.equal(all[1]!.details.repeated, true);
  assert.deepEqual(all[1]!.details.credentials, ["api-key:AAAAAAAAAAAA"]);
  assert.ok(all.every((e) => e.source === "10.0.0.1" && e.credential === "api-key:AAAAAAAAAAAA"));
  assert.ok(!JSON.stringify(all).includes("secret"));
});

test("many sources in one minute: at most maxKeys of their own, the rest folded under source '*'", () => {
  const { failures, rows } = setup(10);
  for (let i = 0; i < 500; i++) failures.record({ type: "auth.failure", transport: "grpc", source: `10.0.${i >> 8}.${i & 255}`, reason: "missing_credentials" });
  failures.flush();
  const all = rows();
  assert.ok(all.length <= 2 * 10 + 2, `${all.length} rows`);
  assert.equal(all.reduce((n, e) => n + e.count, 0), 500, "every failure is counted");
  const overflow = all.filter((e) => e.source === "*");
  assert.ok(overflow.length >= 1 && overflow.every((e) => e.details.overflow === true));
});

test("credential hints keep a key's id or the kind of token, never the secret", () => {
  assert.equal(credentialHint(`inf_Abc123Def456_${"x".repeat(43)}`), "api-key:Abc123Def456");
  assert.equal(credentialHint("inf_short"), "api-key:malformed");
  assert.equal(credentialHint("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), "jwt");
  assert.equal(credentialHint("' OR 1=1 --"), "unknown");
  assert.equal(credentialHint(undefined), null);
});

test("a record never throws: a closed database is reported, not raised; a huge details object is cut", () => {
  const errors: unknown[] = [];
  const db = new Database(":memory:");
  const log = new AuditLog(db, "r1", (err) => errors.push(err));
  const id = log.record({ type: "model.load", actor: "x".repeat(10_000), transport: "http", details: { blob: "y".repeat(100_000) } });
  const [row] = log.query({ limit: 1 });
  assert.equal(row!.id, id);
  assert.equal(row!.actor.length, 256);
  assert.deepEqual(row!.details, { truncated: true, bytes: 100_011 });
  db.close();
  assert.equal(log.record({ type: "model.load", actor: "a", transport: "http" }), undefined);
  assert.equal(errors.length, 1);
});

test("redactConfig hides secret keys and URL passwords, keeps the rest", () => {
  const out = redactConfig({ jwtSecret: "abc".repeat(20), redisUrl: "redis://:pw@redis:6379/0", hfEndpoint: "https://user:tok@hf.example", port: 8080, auth: true, tlsKey: "/etc/key.pem" });
  assert.deepEqual(out, { jwtSecret: "***", redisUrl: "redis://:***@redis:6379/0", hfEndpoint: "https://user:***@hf.example", port: 8080, auth: true, tlsKey: "/etc/key.pem" });
});
