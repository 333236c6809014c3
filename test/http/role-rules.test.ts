// Who may unload or reload a shared model (src/auth/model-control.ts), on every route family and transport
// that can reach one: native, OpenAI, Ollama, WebSocket and both batch APIs. A user's request uses a model
// as it is; only an admin unloads it, reloads it or shortens its stay. Each check looks at the registry's
// loaded instance, which any unload or reload replaces. Needs no external model: tiny llama GGUFs are
// generated at test time ("tiny" with a 256-token trained context, "wide" with 1024).
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Ollama } from "ollama";
import OpenAI, { toFile } from "openai";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import type { LoadedModel } from "../../src/runtimes/loaded-model.js";
import { openDatabase } from "../../src/store/database.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import { Conn } from "../helpers/ws-client.js";

const MINUTE = 60_000;
let srv: TestServer;
let adminKey: string;
let userKey: string;
const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
const loaded = (id: string) => srv.app.registry.getLoaded(id);

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false, keepAlive: "10m" } });
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "wide.gguf"), { contextLength: 1024 });
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice", role: "user" }).key;
});
after(() => srv.cleanup());

/** The model loaded by an admin, as every test starts from. */
async function loadedByAdmin(id = "tiny"): Promise<LoadedModel> {
  const res = await postJson(`${srv.url}/models/${id}/load`, {}, auth(adminKey));
  assert.equal(res.status, 200);
  return loaded(id)!;
}

async function unloadedSoon(id: string): Promise<void> {
  for (let i = 0; i < 100 && loaded(id); i++) await sleep(20);
  assert.equal(loaded(id), undefined, `${id} was unloaded`);
}

/** Long enough for a keep-alive of 0 (a 0 ms timer) to have unloaded an idle model. */
const settle = () => sleep(150);

function assertForbidden(res: { status: number; body: any }, what: string): void {
  assert.equal(res.status, 403, what);
  assert.equal(res.body.error.code, "AUTHORIZATION_FAILED", what);
}

test("native: a user may not load, reload or unload a model; an admin may", async () => {
  const model = await loadedByAdmin();
  assertForbidden(await postJson(`${srv.url}/models/tiny/load`, { context_size: 128 }, auth(userKey)), "reload with other options");
  assertForbidden(await postJson(`${srv.url}/models/tiny/load`, {}, auth(userKey)), "load");
  assertForbidden(await postJson(`${srv.url}/models/tiny/unload`, {}, auth(userKey)), "unload");
  assert.equal((await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hi", max_tokens: 2 }, auth(userKey))).status, 200);
  assert.equal(loaded("tiny"), model, "the model the user found is the one still loaded");

  const unload = await postJson(`${srv.url}/models/tiny/unload`, {}, auth(adminKey));
  assert.deepEqual([unload.status, unload.body.was_loaded], [200, true]);
  assert.equal(loaded("tiny"), undefined);
});

describe("Ollama", () => {
  const asUser = () => new Ollama({ host: srv.url, headers: { authorization: `Bearer ${userKey}` } });
  const asAdmin = () => new Ollama({ host: srv.url, headers: { authorization: `Bearer ${adminKey}` } });
  const hi = { model: "tiny", prompt: "hi", options: { temperature: 0, num_predict: 2 } };

  test("a user's unload call (no prompt, keep_alive 0) is a 403 in Ollama's envelope; an admin's unloads", async () => {
    const model = await loadedByAdmin();
    const generate = await postJson(`${srv.url}/api/generate`, { model: "tiny", keep_alive: 0 }, auth(userKey));
    assert.equal(generate.status, 403);
    assert.deepEqual(Object.keys(generate.body), ["error"]);
    assert.match(generate.body.error, /unloading model 'tiny' needs the admin role/);
    const chat = await postJson(`${srv.url}/api/chat`, { model: "tiny:latest", messages: [], keep_alive: "0s" }, auth(userKey));
    assert.equal(chat.status, 403);
    // Ollama's own client throws it as a ResponseError, as it does any refusal.
    await assert.rejects(asUser().generate({ model: "tiny", prompt: "", keep_alive: 0 }), (e: { status_code?: number }) => e.status_code === 403);
    await settle();
    assert.equal(loaded("tiny"), model);

    const unload = await asAdmin().generate({ model: "tiny", prompt: "", keep_alive: 0 });
    assert.equal(unload.done_reason, "unload");
    await unloadedSoon("tiny");
  });

  test("a user's keep_alive never shortens the model's stay below the server's keepAlive; a longer one applies", async () => {
    const model = await loadedByAdmin();
    const client = asUser();
    await client.generate({ ...hi, keep_alive: 0 });
    await client.chat({ model: "tiny", messages: [{ role: "user", content: "hi" }], options: hi.options, keep_alive: "1ms" });
    await client.embed({ model: "tiny", input: "hi", keep_alive: 0 });
    await settle();
    assert.equal(loaded("tiny"), model, "still loaded, the same instance");
    assert.ok(srv.app.registry.expiresAt("tiny")! > Date.now() + 9 * MINUTE, "the server's 10 minutes still apply");

    await client.generate({ ...hi, keep_alive: "1s" });
    assert.ok(srv.app.registry.expiresAt("tiny")! > Date.now() + 9 * MINUTE, "a shorter keep_alive is not applied");
    await client.generate({ ...hi, keep_alive: "1h" });
    assert.ok(srv.app.registry.expiresAt("tiny")! > Date.now() + 59 * MINUTE, "a longer keep_alive applies");

    await asAdmin().generate({ ...hi, keep_alive: 0 });
    await unloadedSoon("tiny");
  });

  test("num_ctx that would reload the model is a 403 for a user; a context that holds it is used as it is", async () => {
    const model = await loadedByAdmin("wide");
    const base = model.contextSize!;
    assert.ok(base < 512, `loaded with the default context (${base})`);
    const wide = (numCtx: number, key = userKey) =>
      postJson(`${srv.url}/api/generate`, { model: "wide", prompt: "hi", stream: false, options: { num_predict: 2, num_ctx: numCtx } }, auth(key));

    const bigger = await wide(512);
    assert.equal(bigger.status, 403);
    assert.match(bigger.body.error, /num_ctx 512 would reload model 'wide'.*needs the admin role/);
    const loadCall = await postJson(`${srv.url}/api/chat`, { model: "wide", messages: [], options: { num_ctx: 512 } }, auth(userKey));
    assert.equal(loadCall.status, 403, "a load call with a bigger num_ctx");
    for (const fits of [64, base]) {
      const res = await wide(fits);
      assert.deepEqual([res.status, res.body.load_duration], [200, 0], `num_ctx ${fits} fits the loaded context`);
    }
    assert.equal(loaded("wide"), model);

    // An admin's reloads it; a user meeting an unloaded model gets it with its defaults, not their size.
    assert.equal((await wide(512, adminKey)).status, 200);
    assert.notEqual(loaded("wide"), model);
    assert.equal(loaded("wide")!.contextSize, 512);
    assert.equal((await postJson(`${srv.url}/models/wide/unload`, {}, auth(adminKey))).status, 200);
    assert.equal((await wide(1024)).status, 403);
    assert.equal(loaded("wide")!.contextSize, base);
  });
});

test("OpenAI: a user's chat and completion use the model as it is, whatever Ollama-style fields they carry", async () => {
  const model = await loadedByAdmin();
  const extra = { keep_alive: 0, options: { num_ctx: 64 } } as object;
  const openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: userKey, maxRetries: 0 });
  await openai.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...extra });
  await openai.completions.create({ model: "tiny", prompt: "hi", max_tokens: 2, ...extra });
  await settle();
  assert.equal(loaded("tiny"), model);
});

test("WebSocket: a user's inference uses the model as it is", async () => {
  const model = await loadedByAdmin();
  const ws = await Conn.open(`${srv.url.replace(/^http/, "ws")}/ws`);
  ws.send({ type: "auth", token: userKey });
  assert.equal((await ws.next((m) => m.type === "auth")).role, "user");
  ws.send({ type: "inference", id: "a", model: "tiny", prompt: "hi", max_tokens: 2, keep_alive: 0, options: { num_ctx: 64 } });
  assert.equal((await ws.result("a")).end.type, "complete");
  ws.ws.close();
  await settle();
  assert.equal(loaded("tiny"), model);
});

describe("batch", () => {
  test("a user's /batch items use the model as it is", async () => {
    const model = await loadedByAdmin();
    const body = { model: "tiny", max_tokens: 2, keep_alive: 0, options: { num_ctx: 64 }, requests: [{ id: "a", prompt: "hi" }, { id: "b", prompt: "yo" }] };
    const created = await postJson(`${srv.url}/batch`, body, auth(userKey));
    assert.equal(created.status, 202);
    let status = created.body.status;
    for (let i = 0; i < 300 && status !== "completed"; i++) {
      await sleep(50);
      status = ((await (await fetch(`${srv.url}/batch/${created.body.batch_id}`, auth(userKey))).json()) as { status: string }).status;
    }
    assert.equal(status, "completed");
    await settle();
    assert.equal(loaded("tiny"), model);
  });

  test("a user's /v1/batches lines use the model as it is", async () => {
    const model = await loadedByAdmin();
    const openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: userKey, maxRetries: 0 });
    const line = (i: number) => ({
      custom_id: `c${i}`, method: "POST", url: "/v1/chat/completions",
      body: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2, keep_alive: 0, options: { num_ctx: 64 } },
    });
    const jsonl = [line(0), line(1)].map((l) => JSON.stringify(l)).join("\n") + "\n";
    const file = await openai.files.create({ file: await toFile(Buffer.from(jsonl), "batch.jsonl"), purpose: "batch" });
    let batch = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    for (let i = 0; i < 300 && batch.status !== "completed"; i++) {
      await sleep(50);
      batch = await openai.batches.retrieve(batch.id);
    }
    assert.equal(batch.status, "completed");
    assert.equal(batch.request_counts?.completed, 2);
    await settle();
    assert.equal(loaded("tiny"), model);
  });
});
