// Typed model capabilities and the one embeddings service, through every route that names a model.
// Models are generated here: the tiny llama (generates and embeds), the same weights declaring mean
// pooling (an embedding model), a tiny Qwen3-shaped reranker (rank pooling and a classification head), a
// llama declaring rank pooling without a head (it can do nothing), and a small ONNX classifier.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { Ollama } from "ollama";
import { buildTinyLlamaGguf, TINY_LLAMA, TINY_RERANKER } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";
import { Conn } from "../helpers/ws-client.js";

let srv: TestServer;
let openai: OpenAI;
let ollama: Ollama;

before(async () => {
  srv = await startTestServer({
    tinyModels: ["tiny"],
    files: {
      "embedder.gguf": buildTinyLlamaGguf({ pooling: 1 }),
      "ranker.gguf": buildTinyLlamaGguf(TINY_RERANKER),
      "headless.gguf": buildTinyLlamaGguf({ pooling: 4 }),
      "classifier.onnx": linearClassifierOnnx(),
    },
  });
  openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "none", maxRetries: 0 });
  ollama = new Ollama({ host: srv.url });
});
after(() => srv.cleanup());

const get = async (path: string) => (await fetch(`${srv.url}${path}`)).json() as Promise<any>;
const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

test("capabilities come from the file, without loading it, on /models, /v1/models and /api/show", async () => {
  const expected: Record<string, string[]> = {
    tiny: ["text-generation", "embeddings"],
    embedder: ["embeddings"],
    ranker: ["reranking"],
    headless: [],
    classifier: ["tensor-inference"],
  };
  const native = (await get("/models")).models as Array<{ id: string; capabilities: string[]; loaded: boolean }>;
  const oai = (await get("/v1/models")).data as Array<{ id: string; capabilities: string[] }>;
  for (const [id, caps] of Object.entries(expected)) {
    const m = native.find((x) => x.id === id)!;
    assert.deepEqual(m.capabilities, caps, `/models ${id}`);
    assert.equal(m.loaded, false, `${id} was not loaded to answer`);
    assert.deepEqual(oai.find((x) => x.id === id)!.capabilities, caps, `/v1/models ${id}`);
  }
  assert.deepEqual((await get("/v1/models/embedder")).capabilities, ["embeddings"]);
  assert.deepEqual((await ollama.show({ model: "tiny" })).capabilities, ["completion", "embedding"]);
  assert.deepEqual((await ollama.show({ model: "embedder" })).capabilities, ["embedding"]);
  assert.deepEqual((await ollama.show({ model: "ranker" })).capabilities, []);
});

/** The refusal every route gives: 400, UNSUPPORTED_OPERATION in the route's envelope, naming the capabilities. */
function assertRefused(status: number, code: string | undefined, message: string, caps: string, what = "") {
  assert.equal(status, 400, `${what}: ${message}`);
  if (code !== undefined) assert.match(code, /^unsupported_operation$/i, what);
  assert.match(message, new RegExp(`its capabilities: ${caps}`), what);
}

test("a request a model cannot serve gets one coded error on every route, before anything is loaded", async () => {
  const gen = { model: "embedder", prompt: "once", max_tokens: 4 };
  const cases: Array<[string, unknown, string]> = [
    ["/inference", gen, "embeddings"],
    ["/inference/stream", gen, "embeddings"],
    ["/v1/completions", gen, "embeddings"],
    ["/v1/chat/completions", { model: "embedder", messages: [{ role: "user", content: "hi" }] }, "embeddings"],
    ["/embeddings", { model: "ranker", input: "hi" }, "reranking"],
    ["/v1/embeddings", { model: "ranker", input: "hi" }, "reranking"],
    ["/v1/embeddings", { model: "classifier", input: "hi" }, "tensor-inference"],
    ["/v1/rerank", { model: "tiny", query: "hi", documents: ["a"] }, "text-generation, embeddings"],
    ["/rerank", { model: "embedder", query: "hi", documents: ["a"] }, "embeddings"],
    ["/v1/completions", { model: "ranker", prompt: "hi" }, "reranking"],
    ["/v1/completions", { model: "headless", prompt: "hi" }, "none \\(its file declares rank pooling but has no classification head to rank with\\)"],
    ["/models/embedder/inference", { prompt: "once", max_tokens: 4 }, "embeddings"],
    ["/v2/models/tiny/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] }, "text-generation, embeddings"],
  ];
  for (const [route, body, caps] of cases) {
    const r = await postJson(`${srv.url}${route}`, body);
    const err = r.body.error;
    assertRefused(r.status, err.code, typeof err === "string" ? err : err.message, caps, route);
  }
  for (const [route, body] of [
    ["/api/generate", { model: "embedder", prompt: "hi", stream: false }],
    ["/api/chat", { model: "embedder", messages: [{ role: "user", content: "hi" }], stream: false }],
    ["/api/embed", { model: "ranker", input: "hi" }],
    ["/api/embeddings", { model: "ranker", prompt: "hi" }],
  ] as const) {
    const r = await postJson(`${srv.url}${route}`, body);
    assert.equal(r.status, 400, route);
    assert.match(r.body.error, /cannot .*; its capabilities: /, route);
  }
  const ws = await Conn.open(`${srv.url.replace(/^http/, "ws")}/ws`);
  try {
    ws.send({ type: "inference", id: "w", model: "embedder", prompt: "hi", max_tokens: 2 });
    const m = await ws.next((x) => x.id === "w");
    assert.deepEqual({ type: m.type, code: m.code }, { type: "error", code: "UNSUPPORTED_OPERATION" });
    assert.match(m.message, /its capabilities: embeddings/);
  } finally {
    ws.ws.close();
  }
  const loaded = ((await get("/models")).models as Array<{ id: string; loaded: boolean }>).filter((m) => m.loaded).map((m) => m.id);
  assert.deepEqual(loaded, [], "no refused request loaded its model");
});

test("mode narrows a model to one use at registration or load, and never widens it", async () => {
  const reg = await postJson(`${srv.url}/models`, { name: "tiny-embed", path: `${srv.modelsDir}/tiny.gguf`, options: { mode: "embedding" } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  assert.deepEqual((await get("/models/tiny-embed")).capabilities, ["embeddings"]);
  const refused = await postJson(`${srv.url}/v1/completions`, { model: "tiny-embed", prompt: "hi", max_tokens: 2 });
  assertRefused(refused.status, refused.body.error.code, refused.body.error.message, "embeddings");
  const emb = await openai.embeddings.create({ model: "tiny-embed", input: "hello world", encoding_format: "float" });
  assert.equal(emb.data[0]!.embedding.length, TINY_LLAMA.nEmbd);

  const widened = await postJson(`${srv.url}/models`, { name: "ranker-embed", path: `${srv.modelsDir}/ranker.gguf`, options: { mode: "embedding" } });
  assert.equal(widened.status, 201);
  const r = await postJson(`${srv.url}/v1/embeddings`, { model: "ranker-embed", input: "hi" });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /its capabilities: none \(mode embedding is not among what its file can do \(reranking\)\)/);

  const load = await postJson(`${srv.url}/models/tiny/load`, { mode: "completion" });
  assert.equal(load.status, 200, JSON.stringify(load.body));
  assert.equal(load.body.options.mode, "completion");
  assert.deepEqual((await get("/models/tiny")).capabilities, ["text-generation"]);
  const noEmb = await postJson(`${srv.url}/embeddings`, { model: "tiny", input: "hi" });
  assertRefused(noEmb.status, noEmb.body.error.code, noEmb.body.error.message, "text-generation");
  assert.equal((await postJson(`${srv.url}/models/tiny/unload`, {})).status, 200);
  assert.deepEqual((await get("/models/tiny")).capabilities, ["text-generation", "embeddings"], "unloaded, the file decides again");
  const onnxMode = await postJson(`${srv.url}/models/classifier/load`, { mode: "embedding" });
  assert.equal(onnxMode.status, 400, "ONNX models take no mode");
});

test("embeddings: one service, so every route gives the same unit vectors, dimensions and limits", async () => {
  const text = "hello world";
  const raw = (await postJson(`${srv.url}/embeddings`, { model: "embedder", input: text, normalize: false })).body.data[0].embedding as number[];
  assert.equal(raw.length, TINY_LLAMA.nEmbd);
  const unit = raw.map((x) => x / norm(raw));
  const close = (a: number[], b: number[], what: string) => {
    assert.equal(a.length, b.length, what);
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-5, `${what}[${i}]: ${x} vs ${b[i]}`));
  };
  close((await postJson(`${srv.url}/embeddings`, { model: "embedder", input: text })).body.data[0].embedding, unit, "native");
  close((await openai.embeddings.create({ model: "embedder", input: text, encoding_format: "float" })).data[0]!.embedding, unit, "openai");
  close((await ollama.embed({ model: "embedder", input: text })).embeddings[0]!, unit, "ollama /api/embed");
  close((await ollama.embeddings({ model: "embedder", prompt: text })).embedding, raw, "ollama /api/embeddings (not normalised, as Ollama's)");

  // dimensions keeps the first values and renormalises them, on OpenAI, native and Ollama alike.
  const cut = raw.slice(0, 5).map((x) => x / norm(raw.slice(0, 5)));
  close((await openai.embeddings.create({ model: "embedder", input: text, dimensions: 5, encoding_format: "float" })).data[0]!.embedding, cut, "openai dimensions");
  close((await postJson(`${srv.url}/embeddings`, { model: "embedder", input: text, dimensions: 5 })).body.data[0].embedding, cut, "native dimensions");
  close((await ollama.embed({ model: "embedder", input: text, dimensions: 5 } as never)).embeddings[0]!, cut, "ollama dimensions");
  const tooWide = await postJson(`${srv.url}/v1/embeddings`, { model: "embedder", input: text, dimensions: TINY_LLAMA.nEmbd + 1 });
  assert.equal(tooWide.status, 400);
  assert.equal(tooWide.body.error.param, "dimensions");

  // Too long: refused by OpenAI and native, cut to fit by Ollama (its default) and by native's truncate.
  const long = "the ".repeat(300); // the fixture's context is 256 tokens
  const refused = await postJson(`${srv.url}/v1/embeddings`, { model: "embedder", input: ["ok", long] });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, "context_length_exceeded");
  assert.match(refused.body.error.message, /^input 1 is \d+ tokens/);
  assert.equal((await postJson(`${srv.url}/embeddings`, { model: "embedder", input: long })).body.error.code, "CONTEXT_LENGTH_EXCEEDED");
  const cutNative = await postJson(`${srv.url}/embeddings`, { model: "embedder", input: long, truncate: true });
  assert.equal(cutNative.status, 200);
  assert.equal(cutNative.body.usage.prompt_tokens, 255);
  const cutOllama = await ollama.embed({ model: "embedder", input: long });
  assert.equal(cutOllama.prompt_eval_count, 255);
  close(cutOllama.embeddings[0]!, cutNative.body.data[0].embedding, "both truncations embed the same tokens");
  const noTruncate = await postJson(`${srv.url}/api/embed`, { model: "embedder", input: long, truncate: false });
  assert.equal(noTruncate.status, 400);

  // Every route refuses an empty input the same way; more than 2,048 inputs are refused by the schema.
  for (const [route, body] of [
    ["/embeddings", { model: "embedder", input: ["ok", ""] }],
    ["/v1/embeddings", { model: "embedder", input: ["ok", ""] }],
    ["/api/embed", { model: "embedder", input: ["ok", ""] }],
    ["/embeddings", { model: "embedder", input: Array(2049).fill("a") }],
    ["/api/embed", { model: "embedder", input: Array(2049).fill("a") }],
  ] as const) {
    assert.equal((await postJson(`${srv.url}${route}`, body)).status, 400, route);
  }
  // Token ids are accepted on the native route as on OpenAI's.
  const ids = [1, 300, 301, 302];
  close(
    (await postJson(`${srv.url}/embeddings`, { model: "embedder", input: ids })).body.data[0].embedding,
    (await openai.embeddings.create({ model: "embedder", input: ids, encoding_format: "float" })).data[0]!.embedding,
    "token ids",
  );
});

test("an SSE stream on a generating model is untouched by the capability check", async () => {
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "once upon", max_tokens: 4, temperature: 0 }),
  });
  assert.equal(res.status, 200);
  const events = await readSse(res);
  assert.equal(events.at(-1).done, true);
});
