// Needs no external model: tiny llama GGUFs and a tiny ONNX model are generated at test time.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { holdSequence, postJson, startTestServer, type TestServer } from "../helpers/server.js";

const servers: TestServer[] = [];
const start = async (config: Parameters<typeof startTestServer>[0] = {}) => {
  const srv = await startTestServer({ tinyModels: ["a", "b", "c"], ...config });
  servers.push(srv);
  return srv;
};
after(async () => {
  for (const srv of servers) await srv.cleanup();
});

/** What one tiny model takes loaded with the test server's settings (all three are the same shape). */
let perModel: number;
before(async () => {
  const probe = await start();
  const loaded = await postJson(`${probe.url}/models/a/load`, {});
  assert.equal(loaded.status, 200);
  perModel = loaded.body.memory_usage_bytes;
  assert.ok(perModel > 100_000, `a loaded model holds its weights and KV cache (${perModel} bytes)`);
});

const hold = (srv: TestServer, id: string) => holdSequence(srv.app, id);

async function loadedIds(srv: TestServer): Promise<string[]> {
  const res = await fetch(`${srv.url}/models`);
  const body = (await res.json()) as { models: Array<{ id: string; loaded: boolean }> };
  return body.models.filter((m) => m.loaded).map((m) => m.id);
}

const generate = (srv: TestServer, model: string) => postJson(`${srv.url}/inference`, { model, prompt: "once", max_tokens: 2 });

test("under a budget for two models, a third unloads the least recently used idle one; memory is reported", async () => {
  const srv = await start({ config: { memoryBudget: Math.floor(perModel * 2.5), maxLoadedModels: 0 } });
  assert.equal((await generate(srv, "a")).status, 200);
  assert.equal((await generate(srv, "b")).status, 200);
  assert.equal((await generate(srv, "a")).status, 200); // a is now the most recently used
  assert.deepEqual(await loadedIds(srv), ["a", "b"]);
  assert.equal((await generate(srv, "c")).status, 200);
  assert.deepEqual(await loadedIds(srv), ["a", "c"], "b, the least recently used, made room");

  const models = (await (await fetch(`${srv.url}/models`)).json()) as { models: any[] };
  const c = models.models.find((m) => m.id === "c");
  assert.equal(c.memory_usage_bytes, perModel);
  assert.deepEqual(c.memory, { ram_bytes: perModel, vram_bytes: 0 });
  assert.equal(models.models.find((m) => m.id === "b").memory_usage_bytes, undefined);
  const ps = (await (await fetch(`${srv.url}/api/ps`)).json()) as { models: any[] };
  assert.deepEqual(ps.models.map((m) => [m.name, m.size, m.size_vram]).sort(), [["a:latest", perModel, 0], ["c:latest", perModel, 0]]);
  const health = (await (await fetch(`${srv.url}/health`)).json()) as { memory: any };
  assert.equal(health.memory.budget_bytes, Math.floor(perModel * 2.5));
  assert.equal(health.memory.used_bytes, 2 * perModel);
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(metrics, /inferno_model_unloads_total\{model="b",reason="make_room"\} 1/);
  assert.match(metrics, new RegExp(`inferno_model_memory_bytes\\{model="c",kind="ram"\\} ${perModel}`));
});

test("models with requests in flight are never unloaded: the load is refused with 507 INSUFFICIENT_MEMORY", async () => {
  const budget = Math.floor(perModel * 2.5);
  const srv = await start({ config: { memoryBudget: budget, maxLoadedModels: 0 } });
  await postJson(`${srv.url}/models/a/load`, {});
  await postJson(`${srv.url}/models/b/load`, {});
  const holders = [await hold(srv, "a"), await hold(srv, "b")];

  const refused = await generate(srv, "c");
  assert.equal(refused.status, 507);
  assert.equal(refused.body.error.code, "INSUFFICIENT_MEMORY");
  assert.match(refused.body.error.message, /model 'c' needs .* of RAM but only .* can be made free within the .* budget \(models in use: a, b\)/);
  assert.equal(refused.body.error.details.needed_bytes, perModel);
  assert.equal(refused.body.error.details.free_bytes, budget - 2 * perModel);
  assert.equal(refused.body.error.details.budget_bytes, budget);
  assert.deepEqual(refused.body.error.details.models_in_use, ["a", "b"]);
  assert.deepEqual(await loadedIds(srv), ["a", "b"], "nothing was unloaded for a load that could not fit");

  // The held requests carry on, and once one ends its model can make room.
  for (const step of [await holders[0]!.next()]) assert.equal(step.done, false);
  await holders[0]!.return(undefined as never);
  assert.equal((await generate(srv, "c")).status, 200);
  assert.deepEqual(await loadedIds(srv), ["b", "c"]);
  await holders[1]!.return(undefined as never);
});

test("a model larger than the whole budget is refused before loading, GGUF and ONNX alike", async () => {
  const budget = Math.floor(perModel / 2);
  const srv = await start({ config: { memoryBudget: budget }, files: { "linear.onnx": linearClassifierOnnx() } });
  const gguf = await generate(srv, "a");
  assert.equal(gguf.status, 507);
  assert.equal(gguf.body.error.details.needed_bytes, perModel);
  assert.equal(gguf.body.error.details.budget_bytes, budget);
  assert.equal(gguf.body.error.details.free_bytes, budget);
  assert.deepEqual(gguf.body.error.details.models_in_use, []);

  const onnx = await postJson(`${srv.url}/models/linear/inference`, { inputs: { x: [[1, 2, 3, 4]] } });
  assert.equal(onnx.status, 507);
  assert.equal(onnx.body.error.code, "INSUFFICIENT_MEMORY");
  assert.ok(onnx.body.error.details.needed_bytes > 10 * 1024 * 1024, "an ONNX session is estimated at 10 MiB plus 3x its file");
  const openai = await postJson(`${srv.url}/v1/completions`, { model: "a", prompt: "x", max_tokens: 1 });
  assert.equal(openai.status, 507);
  assert.equal(openai.body.error.code, "insufficient_memory"); // OpenAI's lower-case codes
  assert.deepEqual(await loadedIds(srv), []);
});

test("maxLoadedModels: one more unloads the least recently used idle model, or 503 when all are busy", async () => {
  const srv = await start({ config: { maxLoadedModels: 1 } });
  assert.equal((await generate(srv, "a")).status, 200);
  assert.equal((await generate(srv, "b")).status, 200);
  assert.deepEqual(await loadedIds(srv), ["b"]);
  const holder = await hold(srv, "b");
  const busy = await generate(srv, "a");
  assert.equal(busy.status, 503);
  assert.equal(busy.body.error.code, "SERVICE_UNAVAILABLE");
  assert.equal(busy.headers.get("retry-after"), "1");
  assert.deepEqual(busy.body.error.details.models_in_use, ["b"]);
  await holder.return(undefined as never);
  assert.equal((await generate(srv, "a")).status, 200);
  assert.deepEqual(await loadedIds(srv), ["a"]);
});

test("keep_alive: an idle model unloads when it expires, a busy one only once its requests end", async () => {
  const srv = await start({ config: { keepAlive: "400ms" } });
  assert.equal((await generate(srv, "a")).status, 200);
  const ps = (await (await fetch(`${srv.url}/api/ps`)).json()) as { models: any[] };
  const expires = Date.parse(ps.models[0].expires_at);
  assert.ok(Math.abs(expires - (Date.now() + 400)) < 300, `expires_at is about 400 ms away (${ps.models[0].expires_at})`);
  await sleep(700);
  assert.deepEqual(await loadedIds(srv), []);

  // A request's own keep_alive (Ollama's field) outlasts the server default.
  const long = await postJson(`${srv.url}/api/generate`, { model: "b", prompt: "x", stream: false, keep_alive: "30s", options: { num_predict: 1 } });
  assert.equal(long.status, 200);
  await sleep(700);
  assert.deepEqual(await loadedIds(srv), ["b"]);

  await postJson(`${srv.url}/models/c/load`, {});
  const holder = await hold(srv, "c");
  await sleep(700);
  assert.ok((await loadedIds(srv)).includes("c"), "still serving a request, so still loaded");
  await holder.return(undefined as never);
  await sleep(1600);
  assert.ok(!(await loadedIds(srv)).includes("c"), "unloaded once idle");
});
