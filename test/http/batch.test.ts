// Batch jobs over HTTP. Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
const greedy = { temperature: 0, max_tokens: 16 };

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
});
after(() => srv.cleanup());

const getJson = async (url: string, init: RequestInit = {}) => {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as any };
};

/** Polls `check` until it returns a value (not undefined), failing after `ms`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const finished = (id: string) =>
  waitFor(`batch ${id} to finish`, async () => {
    const s = await getJson(`${srv.url}/batch/${id}`);
    return ["completed", "failed", "cancelled"].includes(s.body.status) ? s.body : undefined;
  });

const prompts = ["hello world", "once upon a time", "the world is", "you and a", "it is the time"];

test("a batch runs every request; results per id equal live answers; an item over the context fails alone", async () => {
  const long = "hello world ".repeat(300);
  const requests = [...prompts.map((prompt, i) => ({ id: `r${i}`, prompt })), { id: "too-long", prompt: long }];
  const sub = await postJson(`${srv.url}/batch`, { model: "tiny", requests, ...greedy });
  assert.equal(sub.status, 202);
  assert.match(sub.body.batch_id, /^batch_[A-Za-z0-9_-]+$/);
  assert.equal(sub.body.total_requests, requests.length);
  assert.equal(typeof sub.body.created, "number");
  assert.ok(["queued", "running"].includes(sub.body.status));

  const status = await finished(sub.body.batch_id);
  assert.deepEqual(
    { status: status.status, completed: status.completed, failed: status.failed, total: status.total, results_url: status.results_url },
    { status: "completed", completed: prompts.length, failed: 1, total: requests.length, results_url: `/batch/${sub.body.batch_id}/results` },
  );

  const results = await getJson(`${srv.url}${status.results_url}`);
  assert.equal(results.status, 200);
  assert.deepEqual(results.body.results.map((r: any) => r.id), requests.map((r) => r.id));
  for (const [i, prompt] of prompts.entries()) {
    const r = results.body.results[i];
    const live = await postJson(`${srv.url}/inference`, { model: "tiny", prompt, ...greedy });
    assert.equal(r.status, "completed");
    assert.equal(r.result.text, live.body.choices[0].text, `item r${i}`);
    assert.equal(r.result.finish_reason, live.body.choices[0].finish_reason);
    assert.deepEqual(r.result.usage, live.body.usage);
  }
  const bad = results.body.results.at(-1);
  assert.equal(bad.status, "failed");
  assert.equal(bad.error.code, "CONTEXT_LENGTH_EXCEEDED");
  assert.equal(bad.result, undefined);

  const list = await getJson(`${srv.url}/batch`);
  assert.ok(list.body.batches.some((b: any) => b.batch_id === sub.body.batch_id));
});

test("submissions are validated", async () => {
  const ok = { model: "tiny", requests: [{ id: "a", prompt: "hi" }] };
  const cases: Array<[string, unknown, number, string]> = [
    ["duplicate ids", { ...ok, requests: [{ id: "a", prompt: "x" }, { id: "a", prompt: "y" }] }, 400, "requests.1.id"],
    ["no requests", { ...ok, requests: [] }, 400, "requests"],
    ["too many requests", { ...ok, requests: Array.from({ length: 10_001 }, (_, i) => ({ id: `${i}`, prompt: "x" })) }, 400, "requests"],
    ["id too long", { ...ok, requests: [{ id: "x".repeat(257), prompt: "x" }] }, 400, "requests.0.id"],
    ["missing prompt", { ...ok, requests: [{ id: "a" }] }, 400, "requests.0.prompt"],
    ["bad temperature", { ...ok, temperature: 5 }, 400, "temperature"],
    ["max_tokens over the limit", { ...ok, max_tokens: 1_000_000 }, 400, "max_tokens"],
    ["secret without url", { ...ok, webhook_secret: "s".repeat(20) }, 400, "webhook_secret"],
    ["unknown model", { ...ok, model: "nope" }, 404, ""],
  ];
  for (const [name, body, status, param] of cases) {
    const r = await postJson(`${srv.url}/batch`, body);
    assert.equal(r.status, status, name);
    if (status === 400) {
      assert.equal(r.body.error.code, "INVALID_REQUEST", name);
      assert.ok(r.body.error.message.includes(param), `${name}: ${r.body.error.message}`);
    } else assert.equal(r.body.error.code, "MODEL_NOT_FOUND");
  }
  assert.equal((await getJson(`${srv.url}/batch/batch_nope`)).status, 404);
  assert.equal((await getJson(`${srv.url}/batch/batch_nope/results`)).status, 404);
  assert.equal((await fetch(`${srv.url}/batch/batch_nope`, { method: "DELETE" })).status, 404);
});

const bigBatch = (n: number, maxTokens = 64) => ({
  model: "tiny", temperature: 0, max_tokens: maxTokens,
  requests: Array.from({ length: n }, (_, i) => ({ id: `item-${i}`, prompt: `${prompts[i % prompts.length]} ${i}` })),
});

test("a live request is served while a big batch runs, not after it", async () => {
  const sub = await postJson(`${srv.url}/batch`, bigBatch(400));
  const id = sub.body.batch_id as string;
  await waitFor("the batch to start", async () => ((await getJson(`${srv.url}/batch/${id}`)).body.completed >= 2 ? true : undefined));
  const started = performance.now();
  const live = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello world", ...greedy });
  const liveMs = performance.now() - started;
  assert.equal(live.status, 200);
  const during = (await getJson(`${srv.url}/batch/${id}`)).body;
  assert.equal(during.status, "running");
  assert.ok(during.pending > 0, `the live request finished with ${during.pending} batch items still to run (${Math.round(liveMs)} ms)`);
  const cancelled = await fetch(`${srv.url}/batch/${id}`, { method: "DELETE" });
  assert.equal(((await cancelled.json()) as any).status, "cancelled");
});

test("cancel stops a batch: no item runs after it, unfinished items show as cancelled", async () => {
  const sub = await postJson(`${srv.url}/batch`, bigBatch(200));
  const id = sub.body.batch_id as string;
  await waitFor("an item to finish", async () => ((await getJson(`${srv.url}/batch/${id}`)).body.completed >= 1 ? true : undefined));
  const res = await fetch(`${srv.url}/batch/${id}`, { method: "DELETE" });
  assert.equal(res.status, 200);
  const body = (await res.json()) as any;
  assert.equal(body.status, "cancelled");
  await new Promise((r) => setTimeout(r, 300));
  const a = (await getJson(`${srv.url}/batch/${id}/results`)).body;
  await new Promise((r) => setTimeout(r, 300));
  const b = (await getJson(`${srv.url}/batch/${id}/results`)).body;
  assert.deepEqual(a, b, "nothing changes after the cancel settled");
  assert.equal(a.status, "cancelled");
  const kinds = new Set(a.results.map((r: any) => r.status));
  assert.ok(kinds.has("cancelled"), "unfinished items are shown as cancelled");
  for (const k of kinds) assert.ok(["completed", "cancelled"].includes(k as string), String(k));
  assert.ok(a.results.filter((r: any) => r.status === "completed").length < 200);
  // Cancelling again is harmless and answers the same status.
  const again = await fetch(`${srv.url}/batch/${id}`, { method: "DELETE" });
  assert.equal(((await again.json()) as any).status, "cancelled");
});

test("with auth on, a batch is visible to its owner and admins only; webhooks need admin", async () => {
  const authed = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  try {
    const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
    const { openDatabase } = await import("../../src/store/database.js");
    const db = openDatabase(authed.dataDir);
    const keys = new ApiKeyStore(db);
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    const admin = as(keys.create({ user: "root", name: "admin", role: "admin" }).key);
    const alice = as(keys.create({ user: "alice", name: "a", role: "user" }).key);
    const bob = as(keys.create({ user: "bob", name: "b", role: "user" }).key);
    db.close();
    const sub = await postJson(`${authed.url}/batch`, { model: "tiny", requests: [{ id: "a", prompt: "hi" }], max_tokens: 2 }, alice);
    assert.equal(sub.status, 202);
    const url = `${authed.url}/batch/${sub.body.batch_id}`;
    assert.equal((await getJson(url, alice)).status, 200);
    assert.equal((await getJson(url, admin)).status, 200);
    assert.equal((await getJson(url, bob)).status, 404);
    assert.equal((await fetch(url, { method: "DELETE", ...bob })).status, 404);
    assert.equal((await getJson(`${authed.url}/batch`, bob)).body.batches.length, 0);
    assert.equal((await getJson(`${authed.url}/batch`, admin)).body.batches.length, 1);
    // Webhook registration is for admins only.
    assert.equal((await getJson(`${authed.url}/webhooks`, alice)).status, 403);
    assert.equal((await getJson(`${authed.url}/webhooks`, admin)).status, 200);
  } finally {
    await authed.cleanup();
  }
});
