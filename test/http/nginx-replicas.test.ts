// deploy/nginx.conf for real: a redis-server, three `inferno serve` processes sharing it (--redis-url) and
// Debian's nginx with the deployed file rendered for loopback (test/helpers/nginx.ts). Through nginx:
// readiness, requests spread over the replicas (least_conn), an SSE stream arrives token by token
// (proxy_buffering off), a WebSocket upgrade, and gRPC over h2c. Needs no real model: the tiny fixture
// llama. Skips without nginx or redis-server unless INFERNO_REQUIRE_NGINX=1 / INFERNO_REQUIRE_REDIS=1.
import assert from "node:assert/strict";
import http from "node:http";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli, type ServedCli } from "../helpers/cli.js";
import { call, inferenceClient } from "../helpers/grpc-client.js";
import { freePort, nginxAvailable, startNginx, type RunningNginx } from "../helpers/nginx.js";
import { tempDir } from "../helpers/paths.js";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.js";
import { Conn } from "../helpers/ws-client.js";

const nginxSkip = nginxAvailable().skip;
const skip = nginxSkip || redisAvailable().skip;
const IDS = ["replica-a", "replica-b", "replica-c"];

let redis: TestRedis;
let replicas: ServedCli[] = [];
let nginx: RunningNginx;
let cleanupTmp: () => Promise<void>;

before(async () => {
  if (skip) return;
  const tmp = await tempDir();
  cleanupTmp = tmp.cleanup;
  const modelsDir = path.join(tmp.dir, "models");
  await mkdir(modelsDir);
  await writeTinyLlamaGguf(path.join(modelsDir, "tiny.gguf"));
  redis = await startRedis();
  const grpcPorts = await Promise.all(IDS.map(() => freePort()));
  replicas = await Promise.all(
    IDS.map((id, i) =>
      serveCli([
        "--models-dir", modelsDir, "--data-dir", path.join(tmp.dir, `data-${id}`), "--shared-data-dir", path.join(tmp.dir, "shared"),
        "--redis-url", redis.url, "--replica-id", id, "--grpc-port", String(grpcPorts[i]),
        "--threads", "1", "--batch-threads", "1", "--context-size", "512", "--demo-models", "false", "--probe-models", "false",
      ]),
    ),
  );
  nginx = await startNginx({ http: replicas.map((r) => new URL(r.url).host), grpc: grpcPorts.map((p) => `127.0.0.1:${p}`) });
});

after(async () => {
  await nginx?.close();
  for (const r of replicas) r.child.kill("SIGTERM");
  await Promise.all(replicas.map((r) => r.exit));
  await redis?.close();
  await cleanupTmp?.();
});

/** Generated-request count of one replica, read from its own /metrics (not through nginx, which hides it). */
async function inferenceRequests(replica: ServedCli): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  return [...text.matchAll(/^inferno_inference_requests_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** An SSE stream through nginx: the arrival time of each token event and of the done event, how many pieces
 *  (socket reads) it came in, and which piece brought each token event. */
function stream(maxTokens: number): Promise<{ startAt: number; tokenTimes: number[]; tokenPieces: number[]; doneAt: number; chunks: number }> {
  const startAt = performance.now();
  const body = JSON.stringify({ model: "tiny", prompt: "hello", max_tokens: maxTokens, temperature: 0, ignore_eos: true });
  return new Promise((resolve, reject) => {
    const req = http.request(`${nginx.url}/inference/stream`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      res.setEncoding("utf8");
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`POST /inference/stream through nginx answered ${res.statusCode}`));
      }
      const tokenTimes: number[] = [];
      const tokenPieces: number[] = [];
      let doneAt = 0;
      let chunks = 0;
      let buffered = "";
      res.on("data", (text: string) => {
        const now = performance.now();
        chunks++;
        buffered += text;
        let end: number;
        while ((end = buffered.indexOf("\n\n")) !== -1) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (event.startsWith('data: {"token"')) {
            tokenTimes.push(now);
            tokenPieces.push(chunks);
          } else if (event.includes('"done":true')) doneAt = now;
        }
      });
      res.on("end", () => resolve({ startAt, tokenTimes, tokenPieces, doneAt, chunks }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("readiness answers through nginx", { skip }, async (t) => {
  // /health/ready with Redis and model state is issue #18's health part; before it lands, /health.
  const direct = await fetch(`${replicas[0]!.url}/health/ready`);
  const probe = direct.status === 404 ? "/health" : "/health/ready";
  if (probe === "/health") t.diagnostic("GET /health/ready is not served yet (404 on the replica): checked /health");
  const res = await fetch(`${nginx.url}${probe}`);
  assert.equal(res.status, 200);
  assert.equal((await fetch(`${nginx.url}/metrics`)).status, 404, "nginx keeps /metrics to the scraper");
});

test("concurrent streams spread over all three replicas (least_conn)", { skip }, async (t) => {
  const before = await Promise.all(replicas.map(inferenceRequests));
  await Promise.all(Array.from({ length: 9 }, () => stream(64)));
  const served = (await Promise.all(replicas.map(inferenceRequests))).map((n, i) => n - before[i]!);
  t.diagnostic(`streams per replica: ${served.join(", ")}`);
  assert.equal(served.reduce((a, b) => a + b, 0), 9);
  for (const [i, n] of served.entries()) assert.ok(n >= 1, `${IDS[i]} served none of 9 concurrent streams`);
  const metrics = await (await fetch(`${replicas[1]!.url}/metrics`)).text();
  if (/\breplica="/.test(metrics)) assert.match(metrics, /\breplica="replica-b"/);
  else t.diagnostic("metrics carry no replica label yet (issue #18's metrics part)");
});

test("an SSE stream passes through unbuffered: tokens arrive while it is generated", { skip }, async (t) => {
  // The fixture's context (256) bounds one stream; 180 token events are about 7 KiB, nearly two of nginx's buffers.
  const TOKENS = 180;
  await stream(8); // the model is loaded on whichever replica least_conn picks next; warm all three
  await Promise.all(replicas.map(() => stream(8)));
  const { startAt, tokenTimes, tokenPieces, doneAt, chunks } = await stream(TOKENS);
  const eventsPerPiece = new Map<number, number>();
  for (const piece of tokenPieces) eventsPerPiece.set(piece, (eventsPerPiece.get(piece) ?? 0) + 1);
  const inFirstPiece = eventsPerPiece.get(tokenPieces[0]!) ?? 0;
  t.diagnostic(
    `${TOKENS} tokens, ${tokenTimes.length} events, in ${chunks} pieces (${eventsPerPiece.size} with tokens, ${inFirstPiece} in the first, ` +
      `at most ${Math.max(...eventsPerPiece.values())}); first token at ${(tokenTimes[0]! - startAt).toFixed(1)} ms, done at ${(doneAt - startAt).toFixed(1)} ms`,
  );
  // An event may carry several tokens (the fixture's random pieces are merged until they are valid UTF-8).
  assert.ok(tokenTimes.length > TOKENS / 2, `${tokenTimes.length} token events`);
  assert.ok(doneAt > 0, "the done event arrived");
  // Unbuffered, the events come in many pieces, how many depending on how far the tiny model runs ahead of
  // nginx's reads (34 to 124 seen), the first token's piece with 1 to 18 of them; a proxy that held the stream
  // to its end, or to a full block, would pass it in 1 to 3 pieces, the first with most events. On loopback
  // nginx passes on what it reads as its client takes it even with `proxy_buffering on` (tried: 46 pieces, 18
  // events in the first), so this holds the whole path, not the directive: test/unit/deploy-files.test.ts holds
  // `proxy_buffering off`, and Inferno's SSE and NDJSON answers say `X-Accel-Buffering: no`, which nginx obeys
  // on its own. Counted in pieces, not milliseconds: the stream takes 12-32 ms, its first token 3-8 ms of it
  // (a CI run saw 7.2 of 13.9 ms), so a timing bound follows the machine's load.
  assert.ok(eventsPerPiece.size >= 12, `the token events arrived in ${eventsPerPiece.size} pieces`);
  assert.ok(inFirstPiece < tokenTimes.length / 2, `the first token came in a piece with ${inFirstPiece} of the ${tokenTimes.length} token events`);
});

test("a WebSocket upgrade through nginx: auth, then an inference streams and completes", { skip }, async () => {
  const ws = await Conn.open(`${nginx.url.replace("http", "ws")}/ws`);
  ws.send({ type: "auth", token: "ignored with auth off" });
  assert.equal((await ws.next()).ok, true);
  ws.send({ type: "inference", id: "w1", model: "tiny", prompt: "hello", max_tokens: 20, temperature: 0 });
  const { tokens, end } = await ws.result("w1");
  assert.equal(end.type, "complete");
  assert.ok(tokens.length > 0);
  ws.ws.close();
});

test("gRPC over h2c through nginx (grpc_pass)", { skip }, async () => {
  const client = inferenceClient(nginx.grpcAddress);
  try {
    assert.deepEqual(await call(client, "ServerLive", {}), { live: true });
    assert.deepEqual(await call(client, "ServerReady", {}), { ready: true });
  } finally {
    client.close();
  }
});
