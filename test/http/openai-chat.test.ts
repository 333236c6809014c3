// Needs no external model: a tiny llama GGUF (no chat template of its own) is generated at test time.
import assert from "node:assert/strict";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let client: OpenAI;
const user = (content: string) => ({ role: "user" as const, content });

before(async () => {
  // Tool documentation makes long prompts: the fixture gets a 4096-token context.
  const fixture = path.join(os.tmpdir(), `inferno-chat-${process.pid}.gguf`);
  await writeTinyLlamaGguf(fixture, { contextLength: 4096 });
  srv = await startTestServer({ models: { tiny: fixture }, config: { contextSize: 4096 } });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => srv.cleanup());

test("chat: greedy is deterministic; streamed deltas add up to the same message", async () => {
  const req = { model: "tiny", messages: [user("hello world")], temperature: 0, max_tokens: 20 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.object, "chat.completion");
  assert.match(a.id, /^chatcmpl-/);
  assert.equal(a.choices[0]!.message.role, "assistant");
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  assert.equal(a.choices[0]!.finish_reason, "length");
  assert.equal(a.usage!.completion_tokens, 20);
  assert.ok(a.usage!.prompt_tokens > 2);

  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.id === chunks[0]!.id && c.object === "chat.completion.chunk"), "one stable id");
  assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
  const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("");
  assert.equal(text, a.choices[0]!.message.content);
  const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finals.length, 1);
  assert.equal(finals[0]!.choices[0]!.finish_reason, "length");
  const last = chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, a.usage);
});

test("chat: n choices in parallel, each seeded differently, usage summed", async () => {
  const r = await client.chat.completions.create({
    model: "tiny", messages: [user("hello")], n: 3, temperature: 1.2, seed: 7, max_tokens: 16,
  });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.usage!.completion_tokens, r.choices.length * 16);
  assert.ok(new Set(r.choices.map((c) => c.message.content)).size > 1, "choices differ");
  const again = await client.chat.completions.create({
    model: "tiny", messages: [user("hello")], n: 3, temperature: 1.2, seed: 7, max_tokens: 16,
  });
  assert.deepEqual(again.choices.map((c) => c.message.content), r.choices.map((c) => c.message.content));
  // Streamed with n: every choice finishes once.
  const stream = await client.chat.completions.create({ model: "tiny", messages: [user("hi")], n: 2, max_tokens: 5, stream: true });
  const finished: number[] = [];
  for await (const c of stream) for (const ch of c.choices) if (ch.finish_reason) finished.push(ch.index);
  assert.deepEqual(finished.sort(), [0, 1]);
});

test("chat: logprobs with top_logprobs", async () => {
  const r = await client.chat.completions.create({
    model: "tiny", messages: [user("hello")], temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0]!.logprobs!.content!;
  assert.ok(content.length > 0 && content.length <= 8);
  assert.equal(content.map((t) => t.token).join(""), r.choices[0]!.message.content);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.ok(t.logprob >= t.top_logprobs[0]!.logprob - 1e-6);
  }
});

test("chat: response_format json_schema is enforced; json_object parses; a bad schema is a 400", async () => {
  const schema = {
    type: "object",
    properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" }, tags: { type: "array", items: { type: "string", maxLength: 5 }, maxItems: 3 } },
    required: ["name", "age", "tags"],
    additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: "tiny", messages: [user("describe a person")], temperature: 0.9, seed, max_tokens: 200,
      response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    });
    const value = JSON.parse(r.choices[0]!.message.content!);
    assert.deepEqual(Object.keys(value).sort(), ["age", "name", "tags"]);
    assert.equal(typeof value.name, "string");
    assert.ok(Number.isInteger(value.age));
    assert.ok(Array.isArray(value.tags) && value.tags.length <= 3);
  }
  const obj = await client.chat.completions.create({
    model: "tiny", messages: [user("json please")], temperature: 0.5, seed: 3, max_tokens: 300, response_format: { type: "json_object" },
  });
  assert.equal(obj.choices[0]!.finish_reason, "stop");
  assert.doesNotThrow(() => JSON.parse(obj.choices[0]!.message.content!));
  await assert.rejects(
    client.chat.completions.create({
      model: "tiny", messages: [user("x")],
      response_format: { type: "json_schema", json_schema: { name: "bad", schema: { type: "frob" } } },
    }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && err.status === 400,
  );
});

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 20 }, unit: { enum: ["c", "f"] } }, required: ["city", "unit"] },
  },
};
const time = {
  type: "function" as const,
  function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", maxLength: 10 } }, required: ["zone"] } },
};

test("chat: a named tool_choice forces a well-formed call, streamed or not", async () => {
  const req = {
    model: "tiny", messages: [user("weather in Paris?")], tools: [weather, time], max_tokens: 120,
    tool_choice: { type: "function" as const, function: { name: "get_weather" } }, temperature: 0.7, seed: 5,
  };
  const r = await client.chat.completions.create(req);
  const choice = r.choices[0]!;
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  const call = choice.message.tool_calls![0]!;
  assert.ok(call.type === "function");
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, "get_weather");
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok(["c", "f"].includes(args.unit));

  const stream = await client.chat.completions.create({ ...req, stream: true });
  const calls: Array<{ name?: string; arguments?: string }> = [];
  let finish;
  for await (const c of stream) {
    for (const tc of c.choices[0]?.delta.tool_calls ?? []) calls.push(tc.function ?? {});
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls[0]!.name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0]!.arguments!), args);
});

test("chat: tool_choice required picks one of the tools; a tool conversation renders", async () => {
  const r = await client.chat.completions.create({
    model: "tiny", messages: [user("what time is it?")], tools: [weather, time], tool_choice: "required", max_tokens: 120,
  });
  const call = r.choices[0]!.message.tool_calls![0]!;
  assert.ok(call.type === "function" && ["get_weather", "get_time"].includes(call.function.name));
  const follow = await client.chat.completions.create({
    model: "tiny", max_tokens: 5, tools: [weather, time],
    messages: [
      user("weather in Paris?"),
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"c"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp": 21}' },
    ],
  });
  assert.equal(follow.choices.length, 1);
  await assert.rejects(
    client.chat.completions.create({ model: "tiny", messages: [user("x")], tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }),
    (err: unknown) => err instanceof OpenAI.BadRequestError,
  );
});

test("chat: errors map to the SDK's classes", async () => {
  await assert.rejects(client.chat.completions.create({ model: "missing", messages: [user("x")] }), (err: unknown) =>
    err instanceof OpenAI.NotFoundError && err.status === 404 && (err.error as { type?: string }).type === "not_found_error");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [] }), (err: unknown) => err instanceof OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [user("x")], temperature: 9 }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError);
    assert.equal((err.error as { param?: string }).param, "temperature");
    return true;
  });
  const raw = await postJson(`${srv.url}/v1/chat/completions`, "{not json");
  assert.equal(raw.status, 400);
  assert.deepEqual(Object.keys(raw.body.error).sort(), ["code", "message", "param", "type"]);
});

test("chat: a registration's chat_template renders the prompt", async () => {
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "templated.gguf"));
  const body = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
  const preamble = "A LONG PREAMBLE THAT ONLY THE SECOND TEMPLATE HAS\n";
  const usage = async (name: string, template: string) => {
    const reg = await postJson(`${srv.url}/models`, { name, path: "templated.gguf", options: { chat_template: template } });
    assert.equal(reg.status, 201);
    const r = await client.chat.completions.create({ model: name, messages: [user("hello")], temperature: 0, max_tokens: 2 });
    return r.usage!.prompt_tokens;
  };
  const plain = await usage("templated-a", body);
  const longer = await usage("templated-b", preamble + body);
  const preambleTokens = (await postJson(`${srv.url}/inference`, { model: "templated-a", prompt: preamble, max_tokens: 1 })).body.usage.prompt_tokens - 1;
  assert.ok(Math.abs(longer - plain - preambleTokens) <= 1, `${longer} - ${plain} ≈ ${preambleTokens}`);
  const bad = await postJson(`${srv.url}/models/templated-a/load`, { chat_template: "{% for %}" });
  assert.equal(bad.status, 400);
});
