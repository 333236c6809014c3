// Rate limits shared by replicas through Redis: a real redis-server and 3 real `inferno serve` processes
// (dist/src/cli.js) with --redis-url and rate limits keyed by client IP (auth off). Each check sends from
// its own loopback address (127.0.0.x) so its windows start empty. Needs redis-server (skipped without it
// unless INFERNO_REQUIRE_REDIS=1) and a tiny generated GGUF (8192-token context, for streams that run
// for seconds); no real model.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import http from "node:http";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { Redis } from "ioredis";
import { setTimeout as sleep } from "node:timers/promises";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli, type ServedCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";
import { redisAvailable, startRedis } from "../helpers/redis.js";

const LEASE_MS = 2000;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** A request from loopback address `from`: the rate-limit key is `ip:<from>`. */
function call(from: string, url: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(url, {
      method: data ? "POST" : "GET",
      localAddress: from,
      headers: data ? { "content-type": "application/json" } : {},
      agent: false,
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (s: string) => (text += s));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** A stream that generates until `close()`: holds a concurrency slot meanwhile. Resolves once its first event arrives. */
function openStream(from: string, url: string): Promise<{ close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/inference/stream`, { method: "POST", localAddress: from, headers: { "content-type": "application/json" }, agent: false });
    req.on("response", (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream refused: ${res.statusCode}`));
      res.once("data", () => resolve({ close: () => req.destroy() }));
    });
    req.on("error", () => {});
    req.end(JSON.stringify({ model: "long", prompt: "once", max_tokens: 8000, ignore_eos: true }));
  });
}

const short = { model: "long", prompt: "hi", max_tokens: 2 };

test("rate limits shared by 3 replicas through Redis", { ...redisAvailable(), timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  const { dir, cleanup } = await tempDir("inferno-limits-redis-");
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await redis.close();
    await cleanup();
  });
  const modelsDir = path.join(dir, "models");
  await mkdir(modelsDir, { recursive: true });
  await writeTinyLlamaGguf(path.join(modelsDir, "long.gguf"), { contextLength: 8192 });
  const args = (i: number) => [
    "--models-dir", modelsDir, "--data-dir", path.join(dir, `data-${i}`), "--threads", "1", "--parallel", "2",
    "--context-size", "8192", "--max-tokens-limit", "8000", "--redis-url", redis.url, "--replica-id", `replica-${i}`,
    "--rate-limit", "--requests-per-minute", "10", "--tokens-per-minute", "20", "--concurrent-requests", "2",
    "--concurrency-lease-ms", String(LEASE_MS),
  ];
  const replicas: ServedCli[] = await Promise.all([0, 1, 2].map((i) => serveCli(args(i))));
  children.push(...replicas.map((r) => r.child));
  const urls = replicas.map((r) => r.url);
  const [a, b, c] = urls as [string, string, string];
  const inspect = new Redis(redis.url, { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
  await inspect.connect();
  t.after(() => inspect.disconnect());

  await t.test("10 requests per minute across all three together, then 429 on each", async () => {
    const from = "127.0.0.2";
    const answers: Answer[] = [];
    for (let i = 0; i < 13; i++) answers.push(await call(from, `${urls[i % 3]}/models`));
    assert.deepEqual(answers.map((r) => r.status), [...Array(10).fill(200), 429, 429, 429]);
    assert.deepEqual(answers.slice(0, 10).map((r) => r.headers["x-ratelimit-remaining"]), ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
    for (const r of answers) {
      assert.equal(r.headers["x-ratelimit-limit"], "10");
      const after = Number(r.headers["x-ratelimit-reset-after"]);
      assert.ok(after >= 1 && after <= 60, String(after));
      assert.ok(Math.abs(Number(r.headers["x-ratelimit-reset"]) - (Date.now() / 1000 + after)) <= 2, "x-ratelimit-reset is the epoch second of the reset");
    }
    for (const refused of answers.slice(10)) {
      assert.equal(refused.body.error.code, "RATE_LIMIT_EXCEEDED");
      assert.equal(refused.body.error.details.limit, "requests_per_minute");
      const retryAfter = Number(refused.headers["retry-after"]);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
    }
  });

  await t.test("tokens per minute: a generation on one replica uses the budget of all", async () => {
    const from = "127.0.0.3";
    const done = await call(from, `${a}/inference`, { model: "long", prompt: "hello", max_tokens: 24, ignore_eos: true });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    // Tokens are charged when the generation ends, just after its answer is sent.
    let refused: Answer | undefined;
    for (let i = 0; i < 20 && refused?.status !== 429; i++) {
      if (i > 0) await sleep(50);
      refused = await call(from, `${b}/models`);
    }
    assert.equal(refused!.status, 429);
    assert.equal(refused!.body.error.details.limit, "tokens_per_minute");
    assert.equal((await call(from, `${c}/inference`, short)).body.error.details.limit, "tokens_per_minute");
  });

  // Retries would count against the 10 requests per minute, so these wait on the slot set in Redis instead.
  const slots = (from: string) => `inferno:rl:{ip:${from}}:conc`;
  const redisNow = async () => {
    const [s, us] = await inspect.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  await t.test("2 concurrent requests across replicas; a closed stream frees its slot", async () => {
    const from = "127.0.0.4";
    const first = await openStream(from, a);
    const second = await openStream(from, b);
    assert.equal(await inspect.zcard(slots(from)), 2);
    const refused = await call(from, `${c}/inference`, short);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.details.limit, "concurrent_requests");
    assert.equal(refused.headers["retry-after"], "1");
    first.close();
    for (let i = 0; i < 200 && (await inspect.zcard(slots(from))) > 1; i++) await sleep(10);
    assert.equal(await inspect.zcard(slots(from)), 1, "the closed stream's slot was released");
    // The closed stream's tokens are charged as its generation stops, and tokens are checked before
    // concurrency: forget them, as this is about the slot.
    const tokens = `inferno:rl:{ip:${from}}:tpm`;
    for (let i = 0; i < 200 && !(await inspect.get(tokens)); i++) await sleep(10);
    await inspect.del(tokens);
    assert.equal((await call(from, `${c}/inference`, short)).status, 200);
    second.close();
  });

  await t.test("a replica SIGKILLed holding a slot: the slot comes free within the lease", async () => {
    const from = "127.0.0.5";
    await openStream(from, c);
    const other = await openStream(from, a);
    assert.equal((await call(from, `${b}/inference`, short)).body.error?.details.limit, "concurrent_requests");
    replicas[2]!.child.kill("SIGKILL");
    await replicas[2]!.exit;
    const killedAt = await redisNow();
    const held = await inspect.zrange(slots(from), 0, -1, "WITHSCORES");
    const dead = held.findIndex((m, i) => i % 2 === 0 && m.startsWith("replica-2:"));
    assert.ok(dead >= 0, held.join(" "));
    const expiry = Number(held[dead + 1]);
    assert.ok(expiry - killedAt <= LEASE_MS, `the dead replica's slot expires ${expiry - killedAt} ms after the kill`);
    assert.equal((await call(from, `${b}/inference`, short)).body.error?.details.limit, "concurrent_requests", "held until the lease runs out");
    while ((await redisNow()) <= expiry) await sleep(50);
    assert.equal((await call(from, `${b}/inference`, short)).status, 200, "free once the lease ran out");
    other.close();
  });

  await t.test("Redis down: coded 503 with Retry-After, replicas alive; Redis back: limits count again", async () => {
    const from = "127.0.0.6";
    await redis.kill();
    let down: Answer | undefined;
    for (let i = 0; i < 40 && down?.status !== 503; i++) {
      if (i > 0) await sleep(25);
      down = await call(from, `${a}/models`);
    }
    assert.equal(down!.status, 503);
    assert.equal(down!.body.error.code, "SERVICE_UNAVAILABLE");
    assert.equal(down!.body.error.details.reason, "redis_unavailable");
    assert.ok(Number(down!.headers["retry-after"]) >= 1);
    const started = Date.now();
    assert.equal((await call(from, `${b}/inference`, short)).status, 503);
    assert.ok(Date.now() - started < 1000, "refused at once, not after a timeout");
    assert.equal((await call(from, `${a}/health`)).status, 200, "health is not rate limited");
    for (const r of [replicas[0]!, replicas[1]!]) assert.equal(r.child.exitCode, null);

    await redis.start();
    let back: Answer | undefined;
    for (let i = 0; i < 100 && back?.status !== 200; i++) {
      if (i > 0) await sleep(50);
      back = await call(from, `${a}/models`);
    }
    assert.equal(back!.status, 200);
    const remaining = Number(back!.headers["x-ratelimit-remaining"]);
    const onB = await call(from, `${b}/models`);
    assert.equal(onB.status, 200, JSON.stringify(onB.body));
    assert.equal(Number(onB.headers["x-ratelimit-remaining"]), remaining - 1, "the replicas count in one window again");
    // The windows of before the outage survived the restart (AOF).
    assert.equal((await call("127.0.0.2", `${b}/models`)).status, 429);
  });
});
