// Needs no external model: tiny llama GGUFs are generated at test time (test/fixtures/gguf-writer.ts).
// Drives /v1/models, /v1/completions and /v1/embeddings through the official OpenAI SDK.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import OpenAI, { APIError } from "openai";
import type { Completion } from "openai/resources/completions";
import { TINY_LLAMA, writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let client: OpenAI;
const greedy = { model: "tiny", temperature: 0, max_tokens: 12 } as const;

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
  // llama.cpp recognises CodeLlama's "▁<PRE>"-style pieces as infill markers.
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny-fim.gguf"), { vocab: ["hello", "world", "<PRE>", "<SUF>", "<MID>"] });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => srv.cleanup());

const tinyModel = () => srv.app.registry.getLoaded("tiny") as LlamaTextModel;

async function rejects(promise: Promise<unknown>, cls: new (...args: never[]) => APIError, status: number, code?: string): Promise<APIError> {
  const err = await promise.then(
    () => assert.fail("expected an error"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
  assert.equal(err.status, status);
  if (code) assert.equal(err.code, code);
  return err;
}

async function collect(stream: AsyncIterable<Completion>): Promise<Completion[]> {
  const chunks: Completion[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

test("models: list and retrieve; a missing model is NotFoundError", async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  assert.ok(ids.includes("tiny") && ids.includes("tiny-fim"));
  const tiny = list.data.find((m) => m.id === "tiny")!;
  assert.equal(tiny.object, "model");
  assert.equal(tiny.owned_by, "inferno");
  assert.ok(Number.isInteger(tiny.created) && tiny.created > 1_600_000_000 && tiny.created < Date.now() / 1000 + 60);
  assert.deepEqual(await client.models.retrieve("tiny"), tiny);
  const err = await rejects(client.models.retrieve("missing"), OpenAI.NotFoundError, 404, "model_not_found");
  assert.equal(err.type, "not_found_error");
});

test("completions: greedy whole and streamed agree; finish_reason length; usage", async () => {
  const whole = await client.completions.create({ ...greedy, prompt: "hello world" });
  assert.equal(whole.object, "text_completion");
  assert.match(whole.id, /^cmpl-/);
  assert.equal(whole.model, "tiny");
  assert.equal(whole.choices.length, 1);
  const [choice] = whole.choices;
  assert.equal(choice!.index, 0);
  assert.equal(choice!.finish_reason, "length");
  assert.equal(choice!.logprobs, null);
  assert.ok(choice!.text.length > 0);
  const promptTokens = tinyModel().tokenize("hello world").length;
  assert.deepEqual(whole.usage, { prompt_tokens: promptTokens, completion_tokens: 12, total_tokens: promptTokens + 12 });

  const chunks = await collect(await client.completions.create({ ...greedy, prompt: "hello world", stream: true }));
  assert.ok(chunks.every((c) => c.id === chunks[0]!.id && c.object === "text_completion"));
  assert.equal(chunks.map((c) => c.choices[0]!.text).join(""), choice!.text);
  assert.deepEqual(chunks.map((c) => c.choices[0]!.finish_reason).filter(Boolean), ["length"]);
  assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "length");
  assert.ok(chunks.every((c) => c.usage === undefined), "no usage without include_usage");
});

test("completions: two prompts × n 2 give four choices, prompt by prompt", async () => {
  const prompts = ["hello world", "once upon a time"];
  const r = await client.completions.create({ ...greedy, prompt: prompts, n: 2 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  const singles = await Promise.all(prompts.map((prompt) => client.completions.create({ ...greedy, prompt })));
  assert.equal(r.choices[0]!.text, singles[0]!.choices[0]!.text);
  assert.equal(r.choices[1]!.text, singles[0]!.choices[0]!.text);
  assert.equal(r.choices[2]!.text, singles[1]!.choices[0]!.text);
  assert.equal(r.choices[3]!.text, singles[1]!.choices[0]!.text);
  const promptTokens = singles[0]!.usage!.prompt_tokens + singles[1]!.usage!.prompt_tokens;
  assert.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: 48, total_tokens: promptTokens + 48 });
});

test("completions: more choices than sequences neither deadlock whole nor streamed", async () => {
  const req = { ...greedy, max_tokens: 4, prompt: ["hello", "world", "the time"], n: 2 }; // 6 choices, 4 sequences
  const whole = await client.completions.create(req);
  assert.equal(whole.choices.length, 6);
  const chunks = await collect(await client.completions.create({ ...req, stream: true }));
  for (let i = 0; i < 6; i++) {
    const text = chunks.flatMap((c) => c.choices.filter((ch) => ch.index === i).map((ch) => ch.text)).join("");
    assert.equal(text, whole.choices[i]!.text, `choice ${i}`);
  }
});

test("completions: token-id prompts, and echo of text and of tokens", async () => {
  const tokens = tinyModel().tokenize("hello world");
  const byText = await client.completions.create({ ...greedy, prompt: "hello world" });
  const byTokens = await client.completions.create({ ...greedy, prompt: tokens });
  assert.equal(byTokens.choices[0]!.text, byText.choices[0]!.text);
  assert.equal(byTokens.usage!.prompt_tokens, tokens.length);
  const nested = await client.completions.create({ ...greedy, prompt: [tokens, tokens] });
  assert.deepEqual(nested.choices.map((c) => c.text), [byText.choices[0]!.text, byText.choices[0]!.text]);

  const echoed = await client.completions.create({ ...greedy, prompt: "hello world", echo: true });
  assert.equal(echoed.choices[0]!.text, "hello world" + byText.choices[0]!.text);
  const echoedTokens = await client.completions.create({ ...greedy, prompt: tokens, echo: true });
  assert.equal(echoedTokens.choices[0]!.text, "hello world" + byText.choices[0]!.text);
  const streamed = await collect(await client.completions.create({ ...greedy, prompt: "hello world", echo: true, stream: true }));
  assert.equal(streamed[0]!.choices[0]!.text, "hello world");
  assert.equal(streamed.map((c) => c.choices[0]!.text).join(""), echoed.choices[0]!.text);
});

test("completions: logprobs in the legacy format, whole and streamed", async () => {
  const r = await client.completions.create({ ...greedy, prompt: "hello world", logprobs: 3 });
  const { text, logprobs } = r.choices[0]!;
  assert.ok(logprobs);
  const n = r.usage!.completion_tokens;
  for (const list of [logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, logprobs.text_offset]) assert.equal(list!.length, n);
  assert.equal(logprobs.tokens!.join(""), text);
  logprobs.text_offset!.forEach((offset, i) => {
    assert.equal(offset, [...logprobs.tokens!.slice(0, i).join("")].length, `offset ${i}`);
    if (i > 0) assert.ok(offset >= logprobs.text_offset![i - 1]!);
  });
  logprobs.top_logprobs!.forEach((top, i) => {
    const entries = Object.entries(top);
    assert.ok(entries.length >= 1 && entries.length <= 4);
    assert.equal(top[logprobs.tokens![i]!], logprobs.token_logprobs![i]);
    for (const [, lp] of entries) assert.ok(lp <= 0);
  });

  const chunks = await collect(await client.completions.create({ ...greedy, prompt: "hello world", logprobs: 3, stream: true }));
  const streamed = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.tokens ?? []));
  assert.deepEqual(streamed, logprobs.tokens);
  assert.deepEqual(chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.text_offset ?? [])), logprobs.text_offset);
});

test("completions: include_usage adds a last chunk with usage and no choices", async () => {
  const chunks = await collect(
    await client.completions.create({ ...greedy, prompt: ["hello", "world"], stream: true, stream_options: { include_usage: true } }),
  );
  const last = chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage!.completion_tokens, 24);
  assert.equal(last.usage!.total_tokens, last.usage!.prompt_tokens + 24);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1));
  assert.deepEqual(new Set(chunks.slice(0, -1).map((c) => c.choices[0]!.index)), new Set([0, 1]));
});

test("completions: suffix fills in on a model with infill tokens and is refused without them", async () => {
  const err = await rejects(client.completions.create({ ...greedy, prompt: "hello", suffix: "world" }), OpenAI.BadRequestError, 400, "unsupported_operation");
  assert.match(err.message, /does not support suffix/);
  assert.equal(err.param, "suffix");
  const r = await client.completions.create({ ...greedy, model: "tiny-fim", prompt: "hello", suffix: "world" });
  // BOS, <PRE>, ▁hello, <SUF>, ▁world, <MID>
  assert.equal(r.usage!.prompt_tokens, 6);
  assert.ok(["length", "stop"].includes(r.choices[0]!.finish_reason));
});

test("completions: bad requests are BadRequestError, unknown models NotFoundError", async () => {
  await rejects(client.completions.create({ ...greedy, prompt: "hi", n: 1, best_of: 2 }), OpenAI.BadRequestError, 400, "invalid_request");
  const ok = await client.completions.create({ ...greedy, max_tokens: 2, prompt: "hi", n: 2, best_of: 2 });
  assert.equal(ok.choices.length, 2);
  const bad = await rejects(client.completions.create({ ...greedy, prompt: "hi", temperature: 5 }), OpenAI.BadRequestError, 400);
  assert.equal(bad.param, "temperature");
  await rejects(client.completions.create({ ...greedy, prompt: [] }), OpenAI.BadRequestError, 400);
  await rejects(client.completions.create({ ...greedy, prompt: [[1, 1e9]] }), OpenAI.BadRequestError, 400);
  await rejects(client.completions.create({ ...greedy, prompt: "hi", echo: true, logprobs: 1 }), OpenAI.BadRequestError, 400);
  await rejects(client.completions.create({ ...greedy, model: "missing", prompt: "hi" }), OpenAI.NotFoundError, 404, "model_not_found");
});

test("embeddings: strings, token ids, float and base64 (the SDK's default) agree", async () => {
  const one = await client.embeddings.create({ model: "tiny", input: "hello world", encoding_format: "float" });
  assert.equal(one.object, "list");
  assert.equal(one.model, "tiny");
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0]!.object, "embedding");
  assert.equal(one.data[0]!.index, 0);
  const vector = one.data[0]!.embedding;
  assert.equal(vector.length, TINY_LLAMA.nEmbd);
  const tokens = tinyModel().tokenize("hello world");
  assert.deepEqual(one.usage, { prompt_tokens: tokens.length, total_tokens: tokens.length });

  const decoded = await client.embeddings.create({ model: "tiny", input: "hello world" });
  assert.deepEqual(decoded.data[0]!.embedding, vector);
  const raw = await client.embeddings.create({ model: "tiny", input: "hello world", encoding_format: "base64" });
  const b64 = raw.data[0]!.embedding as unknown as string;
  assert.equal(typeof b64, "string");
  const bytes = Buffer.from(b64, "base64");
  assert.deepEqual(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)), vector);

  const many = await client.embeddings.create({ model: "tiny", input: ["hello world", "the time"], encoding_format: "float" });
  assert.deepEqual(many.data.map((d) => d.index), [0, 1]);
  assert.deepEqual(many.data[0]!.embedding, vector);
  const byTokens = await client.embeddings.create({ model: "tiny", input: tokens, encoding_format: "float" });
  assert.deepEqual(byTokens.data[0]!.embedding, vector);
  const nested = await client.embeddings.create({ model: "tiny", input: [tokens, tokens], encoding_format: "float" });
  assert.equal(nested.data.length, 2);
  assert.deepEqual(nested.data[1]!.embedding, vector);
  const sized = await client.embeddings.create({ model: "tiny", input: "hi", dimensions: TINY_LLAMA.nEmbd, encoding_format: "float" });
  assert.equal(sized.data[0]!.embedding.length, TINY_LLAMA.nEmbd);
});

test("embeddings: bad input, wrong dimensions and unknown models are refused", async () => {
  // Fewer dimensions than the model's are kept and renormalised (test/http/capabilities.test.ts); more are refused.
  const dims = await rejects(client.embeddings.create({ model: "tiny", input: "hi", dimensions: TINY_LLAMA.nEmbd + 1 }), OpenAI.BadRequestError, 400);
  assert.equal(dims.param, "dimensions");
  await rejects(client.embeddings.create({ model: "tiny", input: "" }), OpenAI.BadRequestError, 400);
  await rejects(client.embeddings.create({ model: "tiny", input: [] }), OpenAI.BadRequestError, 400);
  await rejects(client.embeddings.create({ model: "tiny", input: ["ok", ""] }), OpenAI.BadRequestError, 400);
  await rejects(client.embeddings.create({ model: "tiny", input: [[]] }), OpenAI.BadRequestError, 400);
  await rejects(client.embeddings.create({ model: "missing", input: "hi" }), OpenAI.NotFoundError, 404, "model_not_found");
});
