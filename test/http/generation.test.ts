// Needs no external model: a tiny llama GGUF is generated at test time (test/fixtures/gguf-writer.ts).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
const greedy = { model: "tiny", prompt: "hello world", temperature: 0 };

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
});
after(() => srv.cleanup());

test("greedy generation is deterministic and stops at max_tokens with exact usage", async () => {
  const a = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 24 });
  const b = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 24 });
  assert.equal(a.status, 200);
  assert.match(a.body.id, /^inf_/);
  assert.equal(a.body.model, "tiny");
  assert.equal(a.body.choices[0].text, b.body.choices[0].text);
  assert.ok(a.body.choices[0].text.length > 0);
  assert.equal(a.body.choices[0].finish_reason, "length");
  assert.equal(a.body.usage.completion_tokens, 24);
  const model = srv.app.registry.getLoaded("tiny") as LlamaTextModel;
  assert.equal(a.body.usage.prompt_tokens, model.tokenize("hello world").length);
  assert.equal(a.body.usage.total_tokens, a.body.usage.prompt_tokens + 24);
  assert.equal(typeof a.body.processing_time_ms, "number");
});

test("streaming and non-streaming agree token for token", async () => {
  const whole = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 40 });
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...greedy, max_tokens: 40 }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  assert.ok(res.headers.get("x-request-id"));
  const events = await readSse(res);
  const done = events.at(-1);
  assert.deepEqual({ done: done.done, finish_reason: done.finish_reason }, { done: true, finish_reason: "length" });
  const tokens = events.slice(0, -1);
  tokens.forEach((e, i) => assert.equal(e.index, i));
  assert.equal(tokens.map((e) => e.token).join(""), whole.body.choices[0].text);
  assert.equal(done.usage.completion_tokens, whole.body.usage.completion_tokens);

  // "stream": true on /inference and on /models/{id}/inference gives the same stream.
  const viaFlag = await fetch(`${srv.url}/models/tiny/inference`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: greedy.prompt, temperature: 0, max_tokens: 40, stream: true }),
  });
  const flagEvents = await readSse(viaFlag);
  assert.equal(flagEvents.slice(0, -1).map((e) => e.token).join(""), whole.body.choices[0].text);
});

test("per-model route answers {text, tokens_generated, latency_ms}", async () => {
  const r = await postJson(`${srv.url}/models/tiny/inference`, { prompt: "hello world", max_tokens: 10, temperature: 0 });
  assert.equal(r.status, 200);
  assert.equal(r.body.tokens_generated, 10);
  assert.equal(typeof r.body.text, "string");
  assert.equal(typeof r.body.latency_ms, "number");
});

test("a stop string ends generation before it, with finish_reason stop", async () => {
  const full = (await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 60 })).body.choices[0].text as string;
  // Pick a stop string from the middle of the greedy output.
  const at = Math.floor(full.length / 2);
  const stop = full.slice(at, at + 3);
  assert.ok(stop.length === 3, "fixture output long enough");
  const first = full.indexOf(stop);
  const r = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 60, stop: [stop, "\u0000never"] });
  assert.equal(r.body.choices[0].finish_reason, "stop");
  assert.equal(r.body.choices[0].text, full.slice(0, first));
  // The streamed form never shows any part of the stop string either.
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...greedy, max_tokens: 60, stop }),
  });
  const events = await readSse(res);
  assert.equal(events.slice(0, -1).map((e) => e.token).join(""), full.slice(0, first));
  assert.equal(events.at(-1).finish_reason, "stop");
});

test("a seed makes sampling reproducible; different seeds differ", async () => {
  const sampled = (seed: number) =>
    postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello", temperature: 1.5, top_k: 0, top_p: 1, min_p: 0, max_tokens: 24, seed }).then(
      (r) => r.body.choices[0].text as string,
    );
  const a = await sampled(42);
  assert.equal(await sampled(42), a);
  const others = await Promise.all([1, 2, 3, 4].map(sampled));
  assert.ok(others.some((o) => o !== a), "some other seed gives another text");
});

test("concurrent requests are served together and each gets the greedy answer", async () => {
  const expected = (await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 30 })).body.choices[0].text;
  const all = await Promise.all(Array.from({ length: 10 }, () => postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 30 })));
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.equal(r.body.choices[0].text, expected);
  }
});

test("max_tokens over the server limit and prompts over the context are coded 400s", async () => {
  const tooMany = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 1_000_000 });
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.body.error.code, "INVALID_REQUEST");
  const long = await postJson(`${srv.url}/inference`, { ...greedy, prompt: "hello world ".repeat(400) });
  assert.equal(long.status, 400);
  assert.equal(long.body.error.code, "CONTEXT_LENGTH_EXCEEDED");
  assert.ok(long.body.error.details.prompt_tokens > long.body.error.details.context_size);
});

test("bad input gets the documented envelope, never a 500", async () => {
  const cases: Array<[string, string, number, string]> = [
    ["/inference", '{"model": "tiny", "prompt": ', 400, "INVALID_REQUEST"],
    ["/inference", JSON.stringify({ model: "tiny", prompt: "x", temperature: "hot" }), 400, "INVALID_REQUEST"],
    ["/inference", JSON.stringify({ model: "tiny" }), 400, "INVALID_REQUEST"],
    ["/inference", JSON.stringify({ model: "tiny", prompt: "x", stop: Array(40).fill("a") }), 400, "INVALID_REQUEST"],
    ["/inference", JSON.stringify({ model: "missing", prompt: "x" }), 404, "MODEL_NOT_FOUND"],
    ["/embeddings", JSON.stringify({ model: "tiny", input: [] }), 400, "INVALID_REQUEST"],
    ["/no/such/route", "{}", 404, "NOT_FOUND"],
  ];
  for (const [path, body, status, code] of cases) {
    const r = await postJson(`${srv.url}${path}`, body);
    assert.equal(r.status, status, `${path} ${body}`);
    assert.equal(r.body.error.code, code);
    assert.equal(typeof r.body.error.message, "string");
    assert.equal(typeof r.body.request_id, "string");
    assert.ok(!Number.isNaN(Date.parse(r.body.timestamp)));
    assert.equal(r.headers.get("x-request-id"), r.body.request_id);
    assert.doesNotMatch(JSON.stringify(r.body), /at .*\.js:\d+/);
  }
  const missing = await postJson(`${srv.url}/inference`, { model: "missing", prompt: "x" });
  assert.deepEqual(missing.body.error.details.available_models, ["tiny"]);
  // Bodies without a JSON content type (curl -d sends form-urlencoded) are read as JSON too.
  const curlStyle = await fetch(`${srv.url}/inference`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: JSON.stringify({ ...greedy, max_tokens: 2 }),
  });
  assert.equal(curlStyle.status, 200);
  const notJson = await fetch(`${srv.url}/inference`, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" });
  assert.equal(notJson.status, 400);
  assert.equal(((await notJson.json()) as { error: { code: string } }).error.code, "INVALID_REQUEST");
});

test("a client's own X-Request-Id is echoed back", async () => {
  const res = await fetch(`${srv.url}/health`, { headers: { "x-request-id": "client-abc.123" } });
  assert.equal(res.headers.get("x-request-id"), "client-abc.123");
  const evil = await fetch(`${srv.url}/health`, { headers: { "x-request-id": "bad id\twith spaces" } });
  assert.match(evil.headers.get("x-request-id") ?? "", /^req_/);
});

test("embeddings: one vector per input, float or base64", async () => {
  const r = await postJson(`${srv.url}/embeddings`, { model: "tiny", input: ["hello world", "another text"] });
  assert.equal(r.status, 200);
  assert.equal(r.body.data.length, 2);
  assert.equal(r.body.data[0].embedding.length, 16); // TINY_LLAMA.nEmbd
  assert.deepEqual(r.body.data.map((d: { index: number }) => d.index), [0, 1]);
  assert.ok(r.body.usage.prompt_tokens > 0);
  const b = await postJson(`${srv.url}/embeddings`, { model: "tiny", input: "hello world", encoding_format: "base64" });
  const decoded = new Float32Array(new Uint8Array(Buffer.from(b.body.data[0].embedding, "base64")).buffer);
  assert.deepEqual([...decoded], r.body.data[0].embedding.map((x: number) => Math.fround(x)));
});
