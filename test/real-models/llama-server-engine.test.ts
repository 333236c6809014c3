// The opt-in llama-server engine (--gguf-engine llama-server, or `engine` at registration) against a real
// llama-server child built from node-llama-cpp's bundled llama.cpp: the same answers as the in-process
// engine through the public routes, stop strings, logprobs, ignore_eos / min_tokens, cancellation, a
// backend killed mid-stream, unload, and what it refuses. Skips without a built llama-server, except in
// CI (INFERNO_REQUIRE_LLAMA_SERVER=1), where .ci/run builds one.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import type { LlamaServerModel } from "../../src/runtimes/llama-server/llama-server-model.js";
import { randomLlamaGguf, vocabularyOf, type LlamaShape } from "../../bench/bench-model.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { llamaServerBinary, realModel } from "../helpers/paths.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const bin = llamaServerBinary();
const skip = stories.skip || bin.skip;
let srv: TestServer;

const greedy = { temperature: 0, max_tokens: 48 };
/** 4 MB of Q8_0 weights, 256 wide: the matrix products take ggml's quantized kernels (AMX where the CPU has it). */
const Q8_SHAPE: LlamaShape = { nEmbd: 256, nBlocks: 2, nFf: 512, nHead: 4, nHeadKv: 4, type: "Q8_0" };
const complete = (model: string, extra: object = {}) =>
  postJson(`${srv.url}/v1/completions`, { model, prompt: "Once upon a time", ...greedy, ...extra });

/** The child behind a loaded model on the llama-server engine. */
const serverModel = (id: string) => srv.app.registry.getLoaded(id) as LlamaServerModel;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  if (skip) return;
  srv = await startTestServer({
    models: { ls: stories.path },
    config: { ggufEngine: "llama-server", llamaServer: bin.path, parallel: 2, contextSize: 512 },
  });
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny.gguf"));
  // A quantized model wide enough for ggml's SIMD/AMX matrix kernels (stories260K is F32 and tiny).
  const q8 = randomLlamaGguf(Q8_SHAPE, await vocabularyOf(stories.path), { seed: 3, zeroEos: true, piecesOnly: true });
  await writeFile(path.join(srv.modelsDir, "q8.gguf"), q8);
  // The same file on the in-process engine, for comparison.
  const reg = await postJson(`${srv.url}/models`, { name: "inproc", path: stories.path, options: { engine: "node-llama-cpp" } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
});
after(async () => {
  if (!skip) await srv.cleanup();
});

test("greedy completions match the in-process engine, whole and streamed, with the same usage", { skip }, async () => {
  const a = await complete("ls");
  const b = await complete("inproc");
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.choices[0].text, b.body.choices[0].text);
  assert.ok(a.body.choices[0].text.length > 40);
  assert.equal(a.body.choices[0].finish_reason, "length");
  assert.deepEqual(a.body.usage, b.body.usage);
  assert.equal(serverModel("ls").engine, "llama-server");
  const show = (await fetch(`${srv.url}/models/ls`).then((r) => r.json())) as any;
  assert.equal(show.options.engine, "llama-server");
  assert.deepEqual(show.capabilities, ["text-generation"]);
  assert.equal(((await fetch(`${srv.url}/models/inproc`).then((r) => r.json())) as any).options.engine, "node-llama-cpp");

  const res = await fetch(`${srv.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ls", prompt: "Once upon a time", ...greedy, stream: true, stream_options: { include_usage: true } }),
  });
  const events = (await readSse(res)).filter((e) => e !== "[DONE]");
  const text = events.map((e) => e.choices?.[0]?.text ?? "").join("");
  assert.equal(text, a.body.choices[0].text);
  assert.ok(events.filter((e) => e.choices?.[0]?.text).length > 10, "streamed in many chunks");
  assert.equal(events.at(-1).usage.completion_tokens, 48);
});

test("a Q8_0 model: the same greedy tokens as the in-process engine (the child runs node-llama-cpp's own CPU kernels)", { skip }, async () => {
  const reg = await postJson(`${srv.url}/models`, { name: "q8-inproc", path: path.join(srv.modelsDir, "q8.gguf"), options: { engine: "node-llama-cpp" } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const a = await complete("q8", { max_tokens: 32, ignore_eos: true });
  const b = await complete("q8-inproc", { max_tokens: 32, ignore_eos: true });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(serverModel("q8").engine, "llama-server");
  assert.equal(a.body.usage.completion_tokens, 32);
  assert.equal(a.body.choices[0].text, b.body.choices[0].text);
});

test("chat: the template is rendered by Inferno and answered by the child", { skip }, async () => {
  const body = { messages: [{ role: "user", content: "Tell me a story" }], ...greedy };
  const a = await postJson(`${srv.url}/v1/chat/completions`, { model: "ls", ...body });
  const b = await postJson(`${srv.url}/v1/chat/completions`, { model: "inproc", ...body });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.choices[0].message.content, b.body.choices[0].message.content);
});

test("stop strings end the text before them, as on the in-process engine", { skip }, async () => {
  const a = await complete("ls", { stop: ["Lily"] });
  const b = await complete("inproc", { stop: ["Lily"] });
  assert.equal(a.body.choices[0].finish_reason, "stop");
  assert.ok(!a.body.choices[0].text.includes("Lily"));
  assert.equal(a.body.choices[0].text, b.body.choices[0].text);
  assert.equal(a.body.usage.completion_tokens, b.body.usage.completion_tokens);
});

test("logprobs: one entry per token, the greedy choice on top", { skip }, async () => {
  const r = await complete("ls", { logprobs: 2, max_tokens: 12 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const lp = r.body.choices[0].logprobs;
  assert.equal(lp.tokens.length, 12);
  assert.equal(lp.tokens.join(""), r.body.choices[0].text);
  for (const [i, top] of lp.top_logprobs.entries()) {
    const alts = Object.entries(top) as Array<[string, number]>;
    assert.equal(alts.length, 2);
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.ok(alts.every(([, v]) => v <= lp.token_logprobs[i] + 1e-6), "the chosen token is the most likely (greedy)");
  }
});

test("ignore_eos runs to max_tokens; min_tokens holds off the end; a sampled run ends early without them", { skip }, async () => {
  const MAX = 64;
  const MIN = 48;
  const run = (seed: number, extra: object = {}) =>
    postJson(`${srv.url}/inference`, { model: "tiny", prompt: "Once upon a time", temperature: 1, seed, max_tokens: MAX, ...extra });
  let seed = 0;
  for (let s = 1; s <= 80 && seed === 0; s++) {
    const r = await run(s);
    if (r.body.choices[0].finish_reason === "stop" && r.body.usage.completion_tokens < MIN - 8) seed = s;
  }
  assert.ok(seed > 0, "no seed ends early: the fixture no longer emits end-of-text");
  const whole = await run(seed, { ignore_eos: true });
  assert.equal(whole.body.choices[0].finish_reason, "length");
  assert.equal(whole.body.usage.completion_tokens, MAX);
  const held = await run(seed, { min_tokens: MIN });
  assert.ok(held.body.usage.completion_tokens >= MIN, `min_tokens: ${held.body.usage.completion_tokens} tokens`);
});

test("a client that leaves mid-stream frees the slot: the child stops generating", { skip }, async () => {
  const model = serverModel("ls");
  const controller = new AbortController();
  const res = await fetch(`${srv.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ls", prompt: "Once upon a time", temperature: 0, max_tokens: 400, ignore_eos: true, stream: true }),
    signal: controller.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  controller.abort();
  // Inferno's slot comes back, and llama-server's own slots stop processing.
  const deadline = Date.now() + 5000;
  let idle = false;
  while (!idle && Date.now() < deadline) {
    await sleep(50);
    const slots = JSON.parse((await (model as unknown as { server: { get(r: string): Promise<{ body: string }> } }).server.get("/slots")).body) as Array<{ is_processing: boolean }>;
    idle = model.inFlight === 0 && slots.every((s) => !s.is_processing);
  }
  assert.ok(idle, "llama-server still generating 5 s after the client left");
  const count = model.generatedTokens;
  await sleep(200);
  assert.equal(model.generatedTokens, count, "no tokens counted after the slot went idle");
});

test("a child killed mid-stream: the stream ends with a coded error, the next request loads it again", { skip }, async () => {
  const pid = serverModel("ls").pid!;
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ls", prompt: "Once upon a time", temperature: 0, max_tokens: 400, ignore_eos: true }),
  });
  const reader = res.body!.getReader();
  await reader.read();
  process.kill(pid, "SIGKILL");
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString("utf8");
  }
  assert.match(text, /INFERENCE_FAILED/);
  assert.match(text, /llama-server/);
  const again = await complete("ls");
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.notEqual(serverModel("ls").pid, pid);
  assert.ok(!alive(pid));
});

test("embeddings are refused with a coded error; unload ends the child and removes its socket", { skip }, async () => {
  await complete("ls", { max_tokens: 1 });
  const emb = await postJson(`${srv.url}/v1/embeddings`, { model: "ls", input: "hello" });
  assert.equal(emb.status, 400);
  assert.equal(emb.body.error.code, "unsupported_operation");
  assert.match(emb.body.error.message, /llama-server engine/);

  const model = serverModel("ls");
  const pid = model.pid!;
  const socket = (model as unknown as { server: { socketPath: string } }).server.socketPath;
  assert.ok(existsSync(socket));
  const r = await postJson(`${srv.url}/models/ls/unload`, {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(!alive(pid), "the child is gone");
  assert.ok(!existsSync(socket), "its socket is removed");
});

test("a llama-server binary that is not there: the load fails with a coded error that says what to do", async () => {
  const tiny = await startTestServer({ tinyModels: ["t"], config: { ggufEngine: "llama-server", llamaServer: "/nonexistent/llama-server" } });
  try {
    const r = await postJson(`${tiny.url}/v1/completions`, { model: "t", prompt: "hi", max_tokens: 2 });
    assert.equal(r.status, 500);
    assert.equal(r.body.error.code, "model_load_failed");
    assert.match(r.body.error.message, /build:llama-server/);
  } finally {
    await tiny.cleanup();
  }
});
