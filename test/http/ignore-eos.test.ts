// `ignore_eos` and `min_tokens` on every route that generates text: native, OpenAI (through the SDK, as
// `extra_body` sends them), both batch APIs and /ws. Needs no external model: the tiny llama GGUF generated
// at test time (random weights) ends at end-of-text early for some seeds, which is what both fields override.
// (stories260K never does: it ends a story with BOS, which is not an end-of-generation token.)
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI, { BadRequestError, toFile } from "openai";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";
import { Conn } from "../helpers/ws-client.js";

const MAX = 64;
const MIN = 48;
const PROMPT = "Once upon a time";
let srv: TestServer;
let client: OpenAI;
/** A seed whose sampled run of PROMPT ends at end-of-text before MIN tokens, per route family (chat renders another prompt). */
let seed: number;
let chatSeed: number;

type Run = { finish: string; tokens: number };

/** The first seed whose run ends at end-of-text well short of MIN tokens; fails if none does. */
async function earlyStopSeed(run: (seed: number) => Promise<Run>): Promise<number> {
  for (let s = 1; s <= 80; s++) {
    const r = await run(s);
    if (r.finish === "stop" && r.tokens < MIN - 8) return s;
  }
  return assert.fail("no seed ends early: the fixture no longer emits end-of-text");
}

const sampled = (s: number) => ({ model: "tiny", temperature: 1, seed: s, max_tokens: MAX });
const native = (s: number, extra: object = {}) => postJson(`${srv.url}/inference`, { ...sampled(s), prompt: PROMPT, ...extra });
const chat = (s: number, extra: object = {}) => ({ ...sampled(s), messages: [{ role: "user" as const, content: PROMPT }], ...extra });
/** What the SDK puts on the wire for `extra_body` fields: the typed params plus top-level extras. */
const withExtra = <T>(params: T, extra: { ignore_eos?: boolean; min_tokens?: number }): T => ({ ...params, ...extra }) as T;

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
  seed = await earlyStopSeed(async (s) => {
    const r = await native(s);
    return { finish: r.body.choices[0].finish_reason, tokens: r.body.usage.completion_tokens };
  });
  chatSeed = await earlyStopSeed(async (s) => {
    const r = await client.chat.completions.create(chat(s));
    return { finish: r.choices[0]!.finish_reason, tokens: r.usage!.completion_tokens };
  });
});
after(() => srv.cleanup());

test("native: ignore_eos runs to max_tokens on /inference, its stream and /models/{id}/inference; min_tokens holds off the end", async () => {
  const base = await native(seed, { ignore_eos: false });
  assert.equal(base.body.choices[0].finish_reason, "stop");
  assert.ok(base.body.usage.completion_tokens < MIN - 8);

  const whole = await native(seed, { ignore_eos: true });
  assert.equal(whole.status, 200);
  assert.equal(whole.body.choices[0].finish_reason, "length");
  assert.equal(whole.body.usage.completion_tokens, MAX);
  assert.ok(!whole.body.choices[0].text.includes("</s>"));

  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...sampled(seed), prompt: PROMPT, ignore_eos: true }),
  });
  const done = (await readSse(res)).at(-1);
  assert.equal(done.finish_reason, "length");
  assert.equal(done.usage.completion_tokens, MAX);

  const perModel = await postJson(`${srv.url}/models/tiny/inference`, { prompt: PROMPT, temperature: 1, seed, max_tokens: MAX, ignore_eos: true });
  assert.equal(perModel.body.finish_reason, "length");
  assert.equal(perModel.body.tokens_generated, MAX);

  const atLeast = await native(seed, { min_tokens: MIN });
  assert.ok(atLeast.body.usage.completion_tokens >= MIN, `${atLeast.body.usage.completion_tokens} completion tokens`);
});

test("min_tokens holds off stop strings as well, and ignore_eos keeps them", async () => {
  const greedy = { model: "tiny", prompt: PROMPT, temperature: 0, max_tokens: 24 };
  const lp = await client.completions.create({ ...greedy, logprobs: 0 });
  const tokens = lp.choices[0]!.logprobs!.tokens!;
  const stop = tokens.find((t, i) => i >= 1 && i <= 4 && t.trim().length > 0);
  assert.ok(stop, `a usable early token in ${JSON.stringify(tokens)}`);
  const early = await postJson(`${srv.url}/inference`, { ...greedy, stop: [stop] });
  assert.equal(early.body.choices[0].finish_reason, "stop");
  assert.ok(early.body.usage.completion_tokens <= 5);
  const kept = await postJson(`${srv.url}/inference`, { ...greedy, stop: [stop], ignore_eos: true });
  assert.equal(kept.body.choices[0].text, early.body.choices[0].text);
  // Greedy text does not change under the ban (end-of-text is never this run's top token), so the first
  // 12 tokens' text must come through whole even though it holds the stop string.
  const held = await postJson(`${srv.url}/inference`, { ...greedy, stop: [stop], min_tokens: 12 });
  assert.ok(held.body.usage.completion_tokens >= 12);
  assert.ok(held.body.choices[0].text.startsWith(tokens.slice(0, 12).join("")), JSON.stringify(held.body.choices[0].text));
});

test("OpenAI SDK: extra_body ignore_eos / min_tokens on completions (whole and streamed) and chat", async () => {
  const completion = { ...sampled(seed), prompt: PROMPT };
  const base = await client.completions.create(completion);
  assert.equal(base.choices[0]!.finish_reason, "stop");
  const full = await client.completions.create(withExtra(completion, { ignore_eos: true }));
  assert.equal(full.choices[0]!.finish_reason, "length");
  assert.equal(full.usage!.completion_tokens, MAX);
  const stream = await client.completions.create(withExtra({ ...completion, stream: true as const, stream_options: { include_usage: true } }, { ignore_eos: true }));
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  assert.equal(finish, "length");
  assert.equal(usage!.completion_tokens, MAX);
  const atLeast = await client.completions.create(withExtra(completion, { min_tokens: MIN }));
  assert.ok(atLeast.usage!.completion_tokens >= MIN);

  const chatBase = await client.chat.completions.create(chat(chatSeed));
  assert.equal(chatBase.choices[0]!.finish_reason, "stop");
  const chatFull = await client.chat.completions.create(withExtra(chat(chatSeed), { ignore_eos: true }));
  assert.equal(chatFull.choices[0]!.finish_reason, "length");
  assert.equal(chatFull.usage!.completion_tokens, MAX);
  const chatMin = await client.chat.completions.create(withExtra(chat(chatSeed), { min_tokens: MIN }));
  assert.ok(chatMin.usage!.completion_tokens >= MIN);
});

test("min_tokens above max_tokens is a 400 in each dialect's envelope; a grammar cannot be combined with either", async () => {
  for (const path of ["/inference", "/models/tiny/inference"]) {
    const r = await postJson(`${srv.url}${path}`, { model: "tiny", prompt: PROMPT, max_tokens: 8, min_tokens: 9 });
    assert.equal(r.status, 400, path);
    assert.equal(r.body.error.code, "INVALID_REQUEST");
    assert.deepEqual(r.body.error.details, { min_tokens: 9, max_tokens: 8 });
  }
  const batch = await postJson(`${srv.url}/batch`, { model: "tiny", max_tokens: 8, min_tokens: 9, requests: [{ id: "a", prompt: PROMPT }] });
  assert.equal(batch.status, 400);
  assert.equal(batch.body.error.code, "INVALID_REQUEST");

  for (const [path, body] of [
    ["/v1/completions", { model: "tiny", prompt: PROMPT, max_tokens: 8, min_tokens: 9 }],
    ["/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: PROMPT }], max_completion_tokens: 8, min_tokens: 9 }],
  ] as const) {
    const r = await postJson(`${srv.url}${path}`, body);
    assert.equal(r.status, 400, path);
    assert.equal(r.body.error.type, "invalid_request_error");
    assert.equal(r.body.error.param, "min_tokens");
    assert.equal(r.body.error.code, "invalid_request");
  }
  await assert.rejects(client.completions.create(withExtra({ model: "tiny", prompt: PROMPT, max_tokens: 4 }, { min_tokens: 5 })), BadRequestError);

  const json = await postJson(`${srv.url}/v1/chat/completions`, { ...chat(1), response_format: { type: "json_object" }, ignore_eos: true });
  assert.equal(json.status, 400);
  assert.equal(json.body.error.param, "ignore_eos");
  const tool = { type: "function", function: { name: "f", parameters: { type: "object" } } };
  const forced = await postJson(`${srv.url}/v1/chat/completions`, { ...chat(1), tools: [tool], tool_choice: "required", min_tokens: 2 });
  assert.equal(forced.status, 400);
  assert.equal(forced.body.error.param, "min_tokens");
});

/** Polls a batch's status URL until its `status` is one of `end`. */
async function until<T extends { status: string }>(get: () => Promise<T>, end: string[]): Promise<T> {
  for (const deadline = Date.now() + 60_000; ; ) {
    const b = await get();
    if (end.includes(b.status)) return b;
    assert.ok(Date.now() < deadline, `batch still ${b.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("POST /batch: the shared ignore_eos and min_tokens apply to every item", async () => {
  const submitted = await postJson(`${srv.url}/batch`, {
    ...sampled(seed), ignore_eos: true, requests: [{ id: "a", prompt: PROMPT }, { id: "b", prompt: PROMPT }],
  });
  assert.equal(submitted.status, 202);
  const id = submitted.body.batch_id;
  await until(async () => (await (await fetch(`${srv.url}/batch/${id}`)).json()) as { status: string }, ["completed", "failed"]);
  const { results } = (await (await fetch(`${srv.url}/batch/${id}/results`)).json()) as { results: any[] };
  for (const r of results) {
    assert.equal(r.status, "completed");
    assert.equal(r.result.finish_reason, "length");
    assert.equal(r.result.usage.completion_tokens, MAX);
  }
  const min = await postJson(`${srv.url}/batch`, { ...sampled(seed), min_tokens: MIN, requests: [{ id: "a", prompt: PROMPT }] });
  await until(async () => (await (await fetch(`${srv.url}/batch/${min.body.batch_id}`)).json()) as { status: string }, ["completed", "failed"]);
  const minResults = (await (await fetch(`${srv.url}/batch/${min.body.batch_id}/results`)).json()) as { results: any[] };
  assert.ok(minResults.results[0].result.usage.completion_tokens >= MIN);
});

test("/v1/batches: items' bodies carry ignore_eos and min_tokens; a bad min_tokens line is refused at creation", async () => {
  const lines = [
    { custom_id: "full", method: "POST", url: "/v1/completions", body: { ...sampled(seed), prompt: PROMPT, ignore_eos: true } },
    { custom_id: "min", method: "POST", url: "/v1/completions", body: { ...sampled(seed), prompt: PROMPT, min_tokens: MIN } },
    { custom_id: "base", method: "POST", url: "/v1/completions", body: { ...sampled(seed), prompt: PROMPT } },
  ];
  const upload = async (rows: object[]) =>
    client.files.create({ file: await toFile(Buffer.from(rows.map((l) => JSON.stringify(l)).join("\n")), "b.jsonl"), purpose: "batch" });
  const file = await upload(lines);
  const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" });
  const batch = await until(() => client.batches.retrieve(created.id), ["completed", "failed", "expired", "cancelled"]);
  assert.equal(batch.status, "completed");
  const out = (await (await client.files.content(batch.output_file_id!)).text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const by = Object.fromEntries(out.map((o) => [o.custom_id, o.response.body]));
  assert.equal(by.base.choices[0].finish_reason, "stop");
  assert.equal(by.full.choices[0].finish_reason, "length");
  assert.equal(by.full.usage.completion_tokens, MAX);
  assert.ok(by.min.usage.completion_tokens >= MIN);

  const bad = await upload([{ custom_id: "x", method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: PROMPT, max_tokens: 4, min_tokens: 5 } }]);
  await assert.rejects(client.batches.create({ input_file_id: bad.id, endpoint: "/v1/completions", completion_window: "24h" }), (err: unknown) => {
    assert.ok(err instanceof BadRequestError);
    assert.match(err.message, /line 1: body\.min_tokens: min_tokens 5 is above max_tokens 4/);
    return true;
  });
});

test("/ws: an inference message takes the native fields", async () => {
  const ws = await Conn.open(`${srv.url.replace(/^http/, "ws")}/ws`);
  try {
    ws.send({ type: "inference", id: "full", ...sampled(seed), prompt: PROMPT, ignore_eos: true, stream: false });
    const full = await ws.next((m) => m.id === "full");
    assert.equal(full.type, "complete");
    assert.equal(full.finish_reason, "length");
    assert.equal(full.usage.completion_tokens, MAX);
    ws.send({ type: "inference", id: "bad", model: "tiny", prompt: PROMPT, max_tokens: 2, min_tokens: 3 });
    const bad = await ws.next((m) => m.id === "bad");
    assert.equal(bad.type, "error");
    assert.equal(bad.code, "INVALID_REQUEST");
  } finally {
    ws.ws.close();
  }
});
