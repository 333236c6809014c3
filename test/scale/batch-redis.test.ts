// Batch jobs across replicas: a real redis-server (test/helpers/redis.ts, AOF on) and three real
// `inferno serve` processes sharing it. 300 items submitted on replica 1 run on all three; replica 2 is
// SIGKILLed mid-way and Redis is killed and restarted mid-traffic; every item ends with exactly one
// result, batch.complete reaches the batch's webhook_url once and verifies with `standardwebhooks`,
// and every replica shows the same batch. A cancel on one replica stops a batch on all; an OpenAI
// batch goes through three replicas (upload on one, create on another, results from the third).
// Needs no external model: a tiny llama GGUF is generated.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI, { toFile } from "openai";
import { Webhook } from "standardwebhooks";
import type { ServedCli } from "../helpers/cli.js";
import { startFleet } from "../helpers/fleet.js";
import { redisAvailable } from "../helpers/redis.js";
import { waitFor } from "../helpers/webhook-receiver.js";

const N = 300;

const call = async (url: string, body?: unknown): Promise<{ status: number; headers: Headers; body: any }> => {
  const res = await fetch(url, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: await res.json() };
};

test("300 items over 3 replicas: one SIGKILLed, Redis restarted, every item stored once, batch.complete sent once", { ...redisAvailable(), timeout: 150_000 }, async (t) => {
  const { redis, recv, serve } = await startFleet(t, "inferno-scale-batch-");
  const flags = ["--batch-concurrency", "2", "--threads", "1", "--parallel", "3", "--context-size", "256"];
  const replicas = await Promise.all([1, 2, 3].map((i) => serve(i, flags)));
  const [r1, r2, r3] = replicas as [ServedCli, ServedCli, ServedCli];

  const requests = Array.from({ length: N }, (_, i) => ({ id: `item-${i}`, prompt: `story ${i}` }));
  const sub = await call(`${r1.url}/batch`, { model: "tiny", temperature: 0, max_tokens: 24, requests, webhook_url: `${recv.url}/done` });
  assert.equal(sub.status, 202, JSON.stringify(sub.body));
  const batchId = sub.body.batch_id as string;
  const secret = sub.body.webhook_secret as string;
  assert.match(secret, /^whsec_/);

  // Replica 2 dies mid-batch (its running items come back through BullMQ's stalled check).
  await waitFor("a fifth of the items", 60_000, async () => ((await call(`${r3.url}/batch/${batchId}`)).body.completed >= N / 5 ? true : undefined));
  r2.child.kill("SIGKILL");
  assert.equal((await r2.exit).signal, "SIGKILL");

  // Redis dies mid-traffic: coded 503s with Retry-After, no replica exits; then it comes back (AOF).
  await waitFor("two fifths of the items", 60_000, async () => ((await call(`${r1.url}/batch/${batchId}`)).body.completed >= (2 * N) / 5 ? true : undefined));
  await redis.kill();
  for (const r of [r1, r3]) {
    const refused = await call(`${r.url}/batch`, { model: "tiny", max_tokens: 2, requests: [{ id: "x", prompt: "hi" }] });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "SERVICE_UNAVAILABLE");
    assert.ok(Number(refused.headers.get("retry-after")) > 0, "Retry-After");
    assert.equal((await call(`${r.url}/batch/${batchId}`)).status, 503);
  }
  const live = await call(`${r3.url}/inference`, { model: "tiny", prompt: "hi", max_tokens: 2 });
  assert.equal(live.status, 200, "live inference needs no Redis");
  await sleep(1_500);
  assert.equal(r1.child.exitCode, null, "replica 1 survives the outage");
  assert.equal(r3.child.exitCode, null, "replica 3 survives the outage");
  await redis.start();

  const done = await waitFor("the batch to complete", 90_000, async () => {
    const s = (await call(`${r1.url}/batch/${batchId}`)).body;
    return s.status === "completed" ? s : undefined;
  });
  assert.deepEqual({ completed: done.completed, failed: done.failed, pending: done.pending, total: done.total }, { completed: N, failed: 0, pending: 0, total: N });

  // Every replica shows the same batch (replica 2 restarted on its own data dir).
  const r2b = await serve(2, flags);
  const views = await Promise.all([r1, r2b, r3].map(async (r) => (await call(`${r.url}/batch/${batchId}`)).body));
  for (const v of views) assert.deepEqual({ ...v, webhook: undefined }, { ...done, webhook: undefined });

  // One result per item, in order; the counter moved once per stored result; the work was shared.
  const results = (await call(`${r2b.url}/batch/${batchId}/results`)).body.results as any[];
  assert.deepEqual(results.map((r) => r.id), requests.map((r) => r.id));
  for (const r of results) assert.equal(r.status, "completed", JSON.stringify(r));
  const byReplica = new Map<string, number>();
  for (const r of results) byReplica.set(r.replica, (byReplica.get(r.replica) ?? 0) + 1);
  const reruns = results.filter((r) => r.runs > 1).length;
  t.diagnostic(`items per replica: ${JSON.stringify(Object.fromEntries(byReplica))}; ${reruns} item(s) started more than once (stored once)`);
  for (const r of results) assert.ok(r.runs >= 1, JSON.stringify(r));
  assert.ok((byReplica.get("r1") ?? 0) > 0 && (byReplica.get("r3") ?? 0) > 0, "replicas 1 and 3 both ran items");
  assert.ok((byReplica.get("r2") ?? 0) > 0, "replica 2 ran items before it was killed");

  // batch.complete: once, Standard Webhooks signature verified by the library.
  await waitFor("batch.complete", 20_000, async () => (recv.received.length > 0 ? true : undefined));
  await sleep(1_500);
  assert.equal(recv.received.length, 1, "batch.complete is sent once");
  const [hook] = recv.received;
  const payload = new Webhook(secret).verify(hook!.body, hook!.headers) as any;
  assert.deepEqual({ event: payload.event, id: payload.data.batch_id, completed: payload.data.completed }, { event: "batch.complete", id: batchId, completed: N });
  assert.equal(hook!.headers["webhook-id"], `dlv_${batchId}`);
  const shown = await waitFor("the delivery shown as delivered", 5_000, async () => {
    const d = (await call(`${r3.url}/batch/${batchId}`)).body.webhook.delivery;
    return d?.status === "delivered" ? d : undefined;
  });
  assert.deepEqual({ id: shown.id, attempts: shown.attempts }, { id: `dlv_${batchId}`, attempts: 1 });

  // A cancel on one replica stops the batch on all of them.
  const many = Array.from({ length: 90 }, (_, i) => ({ id: `c-${i}`, prompt: `cancel ${i}` }));
  const toCancel = (await call(`${r1.url}/batch`, { model: "tiny", temperature: 0, max_tokens: 24, requests: many })).body.batch_id as string;
  await waitFor("some items of the batch to cancel", 30_000, async () => ((await call(`${r2b.url}/batch/${toCancel}`)).body.completed >= 3 ? true : undefined));
  const cancelRes = await fetch(`${r3.url}/batch/${toCancel}`, { method: "DELETE" });
  assert.equal(((await cancelRes.json()) as any).status, "cancelled");
  await sleep(1_000);
  const settled = (await call(`${r1.url}/batch/${toCancel}`)).body;
  await sleep(1_500);
  const later = (await call(`${r2b.url}/batch/${toCancel}`)).body;
  assert.deepEqual({ status: later.status, completed: later.completed }, { status: "cancelled", completed: settled.completed }, "no item finishes after the cancel has settled");
  assert.ok(later.pending > 0, "the rest never ran");

  // The OpenAI Batch API through three replicas: upload on 1, create on 3, status and results on 2.
  const sdk = (r: ServedCli) => new OpenAI({ baseURL: `${r.url}/v1`, apiKey: "x", maxRetries: 0 });
  const ids = Array.from({ length: 6 }, (_, i) => `c-${i}`);
  const input = ids.map((custom_id, i) => JSON.stringify({
    custom_id, method: "POST", url: "/v1/chat/completions", body: { model: "tiny", messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 4, temperature: 0 },
  }));
  const file = await sdk(r1).files.create({ file: await toFile(Buffer.from(`${input.join("\n")}\n`), "in.jsonl"), purpose: "batch" });
  const created = await sdk(r3).batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const ended = await waitFor("the OpenAI batch to complete", 30_000, async () => {
    const b = await sdk(r2b).batches.retrieve(created.id);
    return b.status === "completed" ? b : undefined;
  });
  assert.deepEqual(ended.request_counts, { total: 6, completed: 6, failed: 0 });
  const out = (await (await sdk(r2b).files.content(ended.output_file_id!)).text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(out.map((l) => l.custom_id).sort(), ids);
  for (const l of out) assert.equal(l.response.status_code, 200, JSON.stringify(l));
  assert.equal((await sdk(r1).files.retrieve(ended.output_file_id!)).purpose, "batch_output", "the output file is visible on every replica");
});
