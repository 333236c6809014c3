// Three real `inferno serve` replicas sharing keys and users through a real redis-server (issue #18):
// a key made on one works on all; a revocation or a role change on one is refused on the others within
// 1 s; Redis killed gives coded 503s with Retry-After (no crash), readiness false, liveness true; Redis
// back, everything works again without a restart; metrics carry the replica label. Needs no model.
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { runCli, serveCli, type ServedCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";
import { redisAvailable, startRedis } from "../helpers/redis.js";

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function get(base: string, route: string, token?: string): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${base}${route}`, { headers: token ? bearer(token) : {} });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // /metrics is text
  }
  return { status: res.status, headers: res.headers, body };
}

/** Polls `check` every 10 ms until true; the ms it took, or throws after `ms`. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
  return performance.now() - started;
}

test("three replicas share keys, users and revocations through Redis, and ride out a Redis outage", { ...redisAvailable(), timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.close());
  const tmp = await tempDir("inferno-scale-auth-");
  t.after(() => tmp.cleanup());
  const modelsDir = path.join(tmp.dir, "models");
  await mkdir(modelsDir);
  const cli = (...args: string[]) => runCli(["security", ...args, "--redis-url", redis.url, "--data-dir", path.join(tmp.dir, "cli")], { cwd: tmp.dir });

  // The first admin key comes from the CLI against Redis, while the replicas start.
  const names = ["r1", "r2", "r3"];
  const [adminOut, ...replicas] = await Promise.all([
    cli("api-key", "create", "--user", "ops", "--name", "first", "--role", "admin", "--json"),
    ...names.map((name) =>
      serveCli(["--auth", "--redis-url", redis.url, "--replica-id", name, "--data-dir", path.join(tmp.dir, name), "--models-dir", modelsDir, "--threads", "1"]),
    ),
  ]) as [Awaited<ReturnType<typeof runCli>>, ...ServedCli[]];
  t.after(async () => {
    for (const r of replicas) r.child.kill("SIGKILL");
    await Promise.all(replicas.map((r) => r.exit));
  });
  assert.equal(adminOut.code, 0, adminOut.stderr);
  const admin = (JSON.parse(adminOut.stdout) as { key: string }).key;
  const [r1, r2, r3] = replicas.map((r) => r.url) as [string, string, string];
  const all = [r1, r2, r3];

  await t.test("a key made on replica 1 works on 2 and 3; revoked on 2, refused on 1 and 3 within 1 s", async () => {
    const created = await fetch(`${r1}/auth/api-keys`, {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ user: "alice", name: "shared" }),
    });
    assert.equal(created.status, 201);
    const { id, key } = (await created.json()) as { id: string; key: string };
    for (const base of all) assert.equal((await get(base, "/v1/models", key)).status, 200, base);
    const revoked = await fetch(`${r2}/auth/api-keys/${id}`, { method: "DELETE", headers: bearer(admin) });
    assert.equal(revoked.status, 200);
    // Replicas 1 and 3 verified the key a moment ago: only the announcement, not their cache's TTL, can refuse it this fast.
    const ms = await Promise.all([r1, r3].map((base) => within(1000, `revocation on ${base}`, async () => (await get(base, "/v1/models", key)).status === 401)));
    t.diagnostic(`revocation refused on replicas 1 and 3 after ${ms.map((m) => Math.round(m)).join(" and ")} ms`);
    assert.ok(Math.max(...ms) < 1000);
    const listed = await cli("api-key", "list", "--json");
    assert.equal(listed.code, 0, listed.stderr);
    const mine = (JSON.parse(listed.stdout) as Array<{ id: string; revoked_at: number | null; last_used_at: number | null }>).find((k) => k.id === id);
    assert.equal(typeof mine?.revoked_at, "number", "the CLI lists what the replicas wrote in Redis");
  });

  await t.test("a user's role change on one replica reaches tokens on the others within 1 s", async () => {
    const made = await cli("user", "create", "--username", "dana", "--password", "correct horse battery", "--role", "admin");
    assert.equal(made.code, 0, made.stderr);
    const login = await fetch(`${r1}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "dana", password: "correct horse battery" }),
    });
    assert.equal(login.status, 200);
    const { token } = (await login.json()) as { token: string };
    // The JWT secret is shared through Redis: a token from replica 1 is good on 2 and 3 (admin route).
    for (const base of all) assert.equal((await get(base, "/auth/api-keys", token)).status, 200, base);
    const demoted = await cli("user", "set-role", "dana", "--role", "user");
    assert.equal(demoted.code, 0, demoted.stderr);
    const ms = await Promise.all([r2, r3].map((base) => within(1000, `demotion on ${base}`, async () => (await get(base, "/auth/api-keys", token)).status === 403)));
    t.diagnostic(`demotion seen on replicas 2 and 3 ${ms.map((m) => Math.round(m)).join(" and ")} ms after the CLI exited`);
    assert.equal((await get(r1, "/v1/models", token)).status, 200, "still a user");
  });

  await t.test("metrics carry the replica label", async () => {
    for (const [i, base] of all.entries()) {
      const { status, body } = await get(base, "/metrics", admin);
      assert.equal(status, 200);
      assert.match(body as string, new RegExp(`replica="${names[i]}"`));
    }
  });

  await t.test("Redis down: coded 503 with Retry-After for a key not cached, not ready, still live, no exit; Redis back: all works", async () => {
    const made = await cli("api-key", "create", "--user", "erin", "--name", "late", "--json");
    assert.equal(made.code, 0, made.stderr);
    const late = (JSON.parse(made.stdout) as { key: string }).key;
    for (const base of all) assert.equal((await get(base, "/health/ready")).status, 200);

    await redis.kill();
    for (const base of all) {
      await within(5000, `${base} not ready`, async () => (await get(base, "/health/ready")).status === 503);
      const ready = await get(base, "/health/ready");
      assert.deepEqual(ready.body.not_ready, ["redis"]);
      const refused = await get(base, "/v1/models", late);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "2");
      assert.equal(refused.body.error.code, "service_unavailable");
      assert.equal((await get(base, "/health/live")).status, 200);
      assert.equal((await get(base, "/health")).status, 200);
    }
    for (const r of replicas) assert.equal(r.child.exitCode, null, "no replica exited");

    await redis.start();
    for (const base of all) {
      await within(10_000, `${base} ready again`, async () => (await get(base, "/health/ready")).status === 200);
      assert.equal((await get(base, "/v1/models", late)).status, 200, base);
      assert.equal((await get(base, "/health/live")).status, 200);
    }
    for (const r of replicas) assert.equal(r.child.exitCode, null, "no replica exited");
  });
});
