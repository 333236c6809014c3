// Batch items run later, in the batch worker, yet their tokens are the submitter's: they count against
// the owner's tokens-per-minute as a live generation does (src/limits/usage-context.ts), on /batch and
// /v1/batches, and against nobody else's. Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import OpenAI, { toFile } from "openai";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { openDatabase } from "../../src/store/database.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const BUDGET = 10;
let srv: TestServer;
let keys: ApiKeyStore;
let adminKey: string;
const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
const live = (key: string) => postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello", max_tokens: 2 }, auth(key));
const userKey = (user: string) => keys.create({ user, name: user, role: "user" }).key;

before(async () => {
  srv = await startTestServer({
    tinyModels: ["tiny"],
    // Only tokens are scarce here; the admin polls, so the owners' own windows hold only what the test sends.
    config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: true, tokensPerMinute: BUDGET, requestsPerMinute: 1000, requestsPerHour: 10_000 },
  });
  keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
});
after(() => srv.cleanup());

function assertOverBudget(res: { status: number; body: any }): void {
  assert.equal(res.status, 429);
  assert.equal(res.body.error.details.limit, "tokens_per_minute");
}

test("/batch: the items' tokens are charged to the owner's tokens per minute", async () => {
  const alice = userKey("alice");
  const bob = userKey("bob");
  const prompts = ["hello", "once upon a time", "the world"].map((prompt, i) => ({ id: `r${i}`, prompt }));
  const created = await postJson(`${srv.url}/batch`, { model: "tiny", max_tokens: 16, temperature: 0, requests: prompts }, auth(alice));
  assert.equal(created.status, 202);
  let results: any;
  for (let i = 0; i < 300; i++) {
    results = (await (await fetch(`${srv.url}/batch/${created.body.batch_id}/results`, auth(adminKey))).json()) as any;
    if (results.status === "completed") break;
    await sleep(50);
  }
  assert.equal(results.status, "completed");
  const used = results.results.reduce((n: number, r: any) => n + r.result.usage.total_tokens, 0);
  assert.ok(used >= BUDGET, `the batch used ${used} tokens, more than the budget`);

  assertOverBudget(await live(alice));
  assert.equal((await live(bob)).status, 200, "another user's budget is untouched");
});

test("/v1/batches: the lines' tokens are charged to the owner's tokens per minute", async () => {
  const carol = userKey("carol");
  const asCarol = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: carol, maxRetries: 0 });
  const asAdmin = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: adminKey, maxRetries: 0 });
  const line = (i: number) => ({
    custom_id: `c${i}`, method: "POST", url: "/v1/completions",
    body: { model: "tiny", prompt: "once upon a time", max_tokens: 16, temperature: 0 },
  });
  const jsonl = [line(0), line(1)].map((l) => JSON.stringify(l)).join("\n") + "\n";
  const file = await asCarol.files.create({ file: await toFile(Buffer.from(jsonl), "batch.jsonl"), purpose: "batch" });
  let batch = await asCarol.batches.create({ input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" });
  for (let i = 0; i < 300 && batch.status !== "completed"; i++) {
    await sleep(50);
    batch = await asAdmin.batches.retrieve(batch.id);
  }
  assert.equal(batch.status, "completed");
  assert.ok(batch.usage!.total_tokens >= BUDGET, `the batch used ${batch.usage!.total_tokens} tokens`);

  assertOverBudget(await live(carol));
});
