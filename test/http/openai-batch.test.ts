// The OpenAI batch and files APIs through the official SDK, end to end. Needs no external model: a tiny
// llama GGUF is generated at test time.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import OpenAI, { APIError, toFile } from "openai";
import { TINY_RERANKER, writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let client: OpenAI;
const greedy = { model: "tiny", temperature: 0, max_tokens: 12 };
const user = (content: string) => ({ role: "user" as const, content });
const TERMINAL = ["completed", "failed", "expired", "cancelled"];

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
  // A second model with another vocabulary, for a batch whose lines name different models.
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny-b.gguf"), { vocab: ["hello", "world", "time"] });
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "ranker.gguf"), TINY_RERANKER);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
});
after(() => srv.cleanup());

type Line = { custom_id: string; method?: string; url: string; body: Record<string, unknown> };
const jsonl = (lines: unknown[]) => lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n";
const upload = async (lines: unknown[], c = client) =>
  c.files.create({ file: await toFile(Buffer.from(jsonl(lines)), "batch.jsonl"), purpose: "batch" });
const requests = (url: string, bodies: Array<Record<string, unknown>>): Line[] =>
  bodies.map((body, i) => ({ custom_id: `req-${i}`, method: "POST", url, body }));

async function waitFor(id: string, statuses = TERMINAL, c = client, ms = 60_000): Promise<OpenAI.Batches.Batch> {
  for (const end = Date.now() + ms; ; ) {
    const b = await c.batches.retrieve(id);
    if (statuses.includes(b.status)) return b;
    if (Date.now() > end) throw new Error(`batch ${id} is still ${b.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function lines(fileId: string | null | undefined, c = client): Promise<any[]> {
  assert.ok(fileId, "a file id");
  const text = await (await c.files.content(fileId)).text();
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

async function rejects(promise: Promise<unknown>, cls: new (...args: never[]) => APIError, ...fragments: string[]): Promise<APIError> {
  const err = await promise.then(() => assert.fail("expected an error"), (e: unknown) => e);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
  for (const f of fragments) assert.ok(err.message.includes(f), `'${f}' in: ${err.message}`);
  return err;
}

/** Runs a batch of `bodies` against `url` to its end; returns the batch and its output lines by custom_id. */
async function runBatch(url: "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings" | "/v1/rerank", bodies: Array<Record<string, unknown>>) {
  const file = await upload(requests(url, bodies));
  // The SDK's types list OpenAI's endpoints; Inferno also batches /v1/rerank.
  const created = await client.batches.create({ input_file_id: file.id, endpoint: url as "/v1/embeddings", completion_window: "24h" });
  const batch = await waitFor(created.id);
  const out = batch.output_file_id ? await lines(batch.output_file_id) : [];
  return { file, created, batch, out: new Map(out.map((l) => [l.custom_id as string, l])) };
}

test("a chat batch: every output body equals the live chat completion for the same request", async () => {
  const bodies = [
    { ...greedy, messages: [user("hello world")] },
    { ...greedy, messages: [user("once upon a time")], max_tokens: 20 },
    { ...greedy, messages: [{ role: "system", content: "be brief" }, user("the world is")], n: 2 },
    { ...greedy, messages: [user("you and a")], logprobs: true, top_logprobs: 2 },
  ];
  const { file, created, batch, out } = await runBatch("/v1/chat/completions", bodies);
  assert.equal(file.object, "file");
  assert.equal(file.purpose, "batch");
  assert.equal(file.status, "processed");
  assert.match(file.id, /^file-/);
  assert.deepEqual(await client.files.retrieve(file.id), file);
  assert.equal(Buffer.from(await (await client.files.content(file.id)).arrayBuffer()).toString(), jsonl(requests("/v1/chat/completions", bodies)));

  assert.match(created.id, /^batch_/);
  assert.equal(created.object, "batch");
  assert.equal(created.endpoint, "/v1/chat/completions");
  assert.equal(created.input_file_id, file.id);
  assert.equal(created.completion_window, "24h");
  assert.equal(created.expires_at! - created.created_at, 24 * 3600);
  assert.equal(batch.status, "completed");
  assert.deepEqual(batch.request_counts, { total: 4, completed: 4, failed: 0 });
  assert.equal(batch.error_file_id, null);
  assert.ok(batch.completed_at! >= batch.created_at && batch.finalizing_at! <= batch.completed_at!);

  const output = await client.files.retrieve(batch.output_file_id!);
  assert.equal(output.purpose, "batch_output");
  assert.equal(output.bytes, (await (await client.files.content(output.id)).arrayBuffer()).byteLength);

  let promptTokens = 0;
  for (const [i, body] of bodies.entries()) {
    const line = out.get(`req-${i}`);
    assert.ok(line, `req-${i} has an output line`);
    assert.match(line.id, /^batch_req_/);
    assert.equal(line.error, null);
    assert.equal(line.response.status_code, 200);
    assert.equal(typeof line.response.request_id, "string");
    const live = await client.chat.completions.create(body as unknown as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    const got = line.response.body;
    assert.match(got.id, /^chatcmpl-/);
    assert.deepEqual({ object: got.object, model: got.model, choices: got.choices, usage: got.usage }, {
      object: live.object, model: live.model, choices: live.choices, usage: live.usage,
    }, `req-${i}`);
    promptTokens += live.usage!.prompt_tokens;
  }
  assert.equal(batch.usage?.input_tokens, promptTokens);
});

test("a completions batch matches live completions; a request that fails goes to the error file", async () => {
  const bodies = [
    { ...greedy, prompt: "hello world" },
    { ...greedy, prompt: ["once upon a time", "the world is"], n: 2 },
    { ...greedy, prompt: "it is the time", echo: true },
    { ...greedy, prompt: "you and a", logprobs: 2 },
    { ...greedy, prompt: "hello world ".repeat(300) },
  ];
  const { batch, out } = await runBatch("/v1/completions", bodies);
  assert.equal(batch.status, "completed");
  assert.deepEqual(batch.request_counts, { total: 5, completed: 4, failed: 1 });
  for (const [i, body] of bodies.slice(0, 4).entries()) {
    const live = await client.completions.create(body as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    const got = out.get(`req-${i}`)!.response.body;
    assert.match(got.id, /^cmpl-/);
    assert.deepEqual({ object: got.object, choices: got.choices, usage: got.usage }, { object: live.object, choices: live.choices, usage: live.usage }, `req-${i}`);
  }
  assert.equal(out.has("req-4"), false);
  const [failed, ...rest] = await lines(batch.error_file_id);
  assert.equal(rest.length, 0);
  assert.equal(failed.custom_id, "req-4");
  assert.match(failed.id, /^batch_req_/);
  assert.deepEqual(failed.error.code, "context_length_exceeded");
  assert.equal(failed.response.status_code, 400);
  assert.equal(failed.response.body.error.code, "context_length_exceeded");
  assert.equal(failed.response.body.error.type, "invalid_request_error");
});

test("an embeddings batch matches live embeddings; its lines may name different models", async () => {
  const bodies = [
    { model: "tiny", input: "hello world", encoding_format: "float" },
    { model: "tiny", input: ["once upon a time", "the world is"], encoding_format: "float" },
    { model: "tiny", input: "you and a", encoding_format: "base64" },
    { model: "tiny-b", input: "hello world time", encoding_format: "float" },
  ];
  const { batch, out } = await runBatch("/v1/embeddings", bodies);
  assert.equal(batch.status, "completed");
  assert.deepEqual(batch.request_counts, { total: 4, completed: 4, failed: 0 });
  assert.equal(out.get("req-3")!.response.body.model, "tiny-b");
  for (const [i, body] of bodies.entries()) {
    const live = await fetch(`${srv.url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.deepEqual(out.get(`req-${i}`)!.response.body, await live.json(), `req-${i}`);
  }
  // The SDK's own call (base64 on the wire, decoded by the SDK) gives the same vectors as the float item.
  const sdk = await client.embeddings.create({ model: "tiny", input: "hello world" });
  const item = out.get("req-0")!.response.body.data[0].embedding as number[];
  sdk.data[0]!.embedding.forEach((v, j) => assert.ok(Math.abs(v - item[j]!) < 1e-6));
});

test("a rerank batch matches live reranking", async () => {
  const documents = ["once upon a time", "hello world", { text: "the time is" }];
  const bodies = [
    { model: "ranker", query: "hello", documents },
    { model: "ranker", query: "once upon", documents, top_n: 2, return_documents: true },
  ];
  const { batch, out } = await runBatch("/v1/rerank", bodies);
  assert.equal(batch.status, "completed");
  assert.deepEqual(batch.request_counts, { total: 2, completed: 2, failed: 0 });
  for (const [i, body] of bodies.entries()) {
    const live = await fetch(`${srv.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const { id: _live, ...expected } = (await live.json()) as Record<string, unknown>;
    const { id: _item, ...got } = out.get(`req-${i}`)!.response.body as Record<string, unknown>;
    assert.deepEqual(got, expected, `req-${i}`);
  }
  assert.equal(out.get("req-1")!.response.body.results.length, 2);
});

test("bad input is refused with the line numbers: at upload (shape) and at creation (bodies, models)", async () => {
  const ok = { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { ...greedy, messages: [user("hi")] } };
  await rejects(upload([ok, "{not json", { ...ok, custom_id: "b", url: "/v1/images" }, { ...ok }, { ...ok, custom_id: "c", method: "GET" }]),
    OpenAI.BadRequestError, "line 2: not valid JSON", "line 3: url", "line 4: custom_id 'a' is also on line 1", "line 5: method");
  await rejects(upload([]), OpenAI.BadRequestError, "no requests");
  await rejects(client.files.create({ file: await toFile(Buffer.from(jsonl([ok])), "x.jsonl"), purpose: "fine-tune" }), OpenAI.BadRequestError, "purpose");

  const create = async (lines: unknown[], endpoint: "/v1/chat/completions" | "/v1/completions" = "/v1/chat/completions") =>
    client.batches.create({ input_file_id: (await upload(lines)).id, endpoint, completion_window: "24h" });
  await rejects(create([ok, { ...ok, custom_id: "b", body: { model: "tiny" } }]), OpenAI.BadRequestError, "line 2: body.messages");
  await rejects(create([ok, { ...ok, custom_id: "b", url: "/v1/completions" }]), OpenAI.BadRequestError, "line 2: url '/v1/completions'");
  await rejects(create([ok], "/v1/completions"), OpenAI.BadRequestError, "line 1: url '/v1/chat/completions'");
  await rejects(create([ok, { ...ok, custom_id: "b", body: { ...ok.body, model: "nope" } }]), OpenAI.BadRequestError, "line 2: model 'nope' not found");
  await rejects(create([{ ...ok, body: { ...ok.body, stream: true } }]), OpenAI.BadRequestError, "line 1: body.stream");
  await rejects(create([{ ...ok, body: { ...ok.body, max_tokens: 1_000_000 } }]), OpenAI.BadRequestError, "line 1: body.max_tokens");
  const file = await upload([ok]);
  await rejects(client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "1h" as "24h" }), OpenAI.BadRequestError, "completion_window");
  await rejects(client.batches.create({ input_file_id: file.id, endpoint: "/v1/moderations", completion_window: "24h" }), OpenAI.BadRequestError, "endpoint");
  await rejects(client.batches.create({ input_file_id: "file-nope", endpoint: "/v1/chat/completions", completion_window: "24h" }), OpenAI.NotFoundError);
});

test("unknown ids are NotFoundError; a deleted file is gone", async () => {
  await rejects(client.batches.retrieve("batch_nope"), OpenAI.NotFoundError, "batch_nope");
  await rejects(client.batches.cancel("batch_nope"), OpenAI.NotFoundError);
  await rejects(client.files.retrieve("file-nope"), OpenAI.NotFoundError);
  await rejects(client.files.content("file-nope"), OpenAI.NotFoundError);
  const file = await upload([{ custom_id: "a", url: "/v1/embeddings", method: "POST", body: { model: "tiny", input: "x" } }]);
  assert.deepEqual(await client.files.delete(file.id), { id: file.id, object: "file", deleted: true });
  await rejects(client.files.retrieve(file.id), OpenAI.NotFoundError);
  await rejects(client.files.delete(file.id), OpenAI.NotFoundError);
});

test("cancel: cancelling, then cancelled; finished items are in the output file, the rest in the error file", async () => {
  const bodies = Array.from({ length: 150 }, (_, i) => ({ ...greedy, max_tokens: 48, messages: [user(`story number ${i}`)] }));
  const file = await upload(requests("/v1/chat/completions", bodies));
  const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { run: "cancel" } });
  for (const end = Date.now() + 30_000; (await client.batches.retrieve(created.id)).request_counts!.completed < 2; ) {
    assert.ok(Date.now() < end, "items run");
    await new Promise((r) => setTimeout(r, 20));
  }
  const cancelling = await client.batches.cancel(created.id);
  assert.ok(["cancelling", "cancelled"].includes(cancelling.status), cancelling.status);
  assert.equal(typeof cancelling.cancelling_at, "number");
  const b = await waitFor(created.id);
  assert.equal(b.status, "cancelled");
  assert.deepEqual(b.metadata, { run: "cancel" });
  assert.equal(typeof b.cancelled_at, "number");
  const done = b.request_counts!.completed;
  assert.ok(done >= 2 && done < 150, `${done} completed`);
  const out = await lines(b.output_file_id);
  const errors = await lines(b.error_file_id);
  assert.equal(out.length, done);
  assert.ok(errors.every((e) => e.error.code === "batch_cancelled" && e.response === null));
  const ids = [...out, ...errors].map((l) => l.custom_id).sort();
  assert.deepEqual(ids, bodies.map((_, i) => `req-${i}`).sort(), "every request once, in one file or the other");
  assert.equal((await client.batches.cancel(created.id)).status, "cancelled", "cancelling again changes nothing");
});

test("list: newest first, with limit, after and has_more; the SDK pages through all", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const file = await upload([{ custom_id: "a", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: `x ${i}` } }]);
    ids.push((await client.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h" })).id);
  }
  const first = await client.batches.list({ limit: 2 });
  assert.deepEqual(first.data.map((b) => b.id), [ids[2], ids[1]]);
  assert.equal(first.has_more, true);
  const raw = (await (await fetch(`${srv.url}/v1/batches?limit=2&after=${ids[1]}`)).json()) as any;
  assert.equal(raw.object, "list");
  assert.equal(raw.first_id, ids[0]);
  const all: string[] = [];
  for await (const b of client.batches.list({ limit: 2 })) all.push(b.id);
  assert.equal(new Set(all).size, all.length, "no batch twice");
  assert.deepEqual(all.slice(0, 3), [ids[2], ids[1], ids[0]]);
  const files: string[] = [];
  for await (const f of client.files.list({ limit: 3, purpose: "batch" })) files.push(f.id);
  assert.ok(files.length >= 3 && new Set(files).size === files.length);
});

test("an OpenAI batch lives in the engine's tables and resumes after a restart", async () => {
  const { dir, cleanup } = await tempDir();
  const dirs = { modelsDir: path.join(dir, "models"), dataDir: path.join(dir, "data") };
  let server = await startTestServer({ tinyModels: ["tiny"], dirs });
  try {
    const c = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
    const bodies = Array.from({ length: 40 }, (_, i) => ({ ...greedy, max_tokens: 48, messages: [user(`tale ${i}`)] }));
    const file = await upload(requests("/v1/chat/completions", bodies), c);
    const { id } = await c.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const db = new Database(path.join(dirs.dataDir, "inferno.db"), { readonly: true });
    const rows = db.prepare("SELECT item_id, request FROM batch_items WHERE batch_id = ? ORDER BY seq").all(id) as Array<{ item_id: string; request: string }>;
    db.close();
    assert.deepEqual(rows.map((r) => r.item_id), bodies.map((_, i) => `req-${i}`));
    assert.deepEqual(JSON.parse(rows[0]!.request), { endpoint: "/v1/chat/completions", model: "tiny", body: bodies[0] });
    while ((await c.batches.retrieve(id)).request_counts!.completed < 2) await new Promise((r) => setTimeout(r, 20));
    await server.close();
    const check = new Database(path.join(dirs.dataDir, "inferno.db"), { readonly: true });
    const left = check.prepare("SELECT count(*) AS n FROM batch_items WHERE batch_id = ? AND status = 'pending'").get(id) as { n: number };
    check.close();
    assert.ok(left.n > 0, "the server stopped mid-batch");

    server = await startTestServer({ tinyModels: ["tiny"], dirs });
    const c2 = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
    const b = await waitFor(id, TERMINAL, c2);
    assert.equal(b.status, "completed");
    assert.deepEqual(b.request_counts, { total: 40, completed: 40, failed: 0 });
    const out = await lines(b.output_file_id, c2);
    assert.deepEqual(out.map((l) => l.custom_id).sort(), bodies.map((_, i) => `req-${i}`).sort());
  } finally {
    await server.close();
    await cleanup();
  }
});

test("with auth on, files and batches are visible to their owner and admins only", async () => {
  const authed = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  try {
    const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
    const { openDatabase } = await import("../../src/store/database.js");
    const db = openDatabase(authed.dataDir);
    const keys = new ApiKeyStore(db);
    const as = (user: string, role: "admin" | "user") =>
      new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: keys.create({ user, name: user, role }).key, maxRetries: 0 });
    const [alice, bob, admin] = [as("alice", "user"), as("bob", "user"), as("root", "admin")];
    db.close();
    const file = await upload([{ custom_id: "a", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: "x" } }], alice);
    const batch = await alice.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h" });
    await rejects(bob.files.retrieve(file.id), OpenAI.NotFoundError);
    await rejects(bob.batches.retrieve(batch.id), OpenAI.NotFoundError);
    await rejects(bob.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h" }), OpenAI.NotFoundError);
    assert.equal((await bob.batches.list()).data.length, 0);
    assert.equal((await admin.batches.retrieve(batch.id)).id, batch.id);
    const done = await waitFor(batch.id, TERMINAL, alice);
    assert.equal((await lines(done.output_file_id, alice)).length, 1);
    await rejects(bob.files.content(done.output_file_id!), OpenAI.NotFoundError);
    await rejects(new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: "wrong", maxRetries: 0 }).files.list(), OpenAI.AuthenticationError);
  } finally {
    await authed.cleanup();
  }
});
