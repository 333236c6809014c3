// Needs no external model: a tiny llama GGUF (random weights, no chat template, 16-dim embeddings) is
// generated at test time. Talks to a real server through Ollama's official JavaScript client.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let ollama: Ollama;
const greedy = { temperature: 0, num_predict: 12 };

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
  ollama = new Ollama({ host: srv.url });
});
after(() => srv.cleanup());

/** The status an Ollama client call failed with (its ResponseError carries status_code). */
async function failure(call: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { status_code?: number; message: string };
    return { status: e.status_code ?? 0, message: e.message };
  }
  assert.fail("the call should have failed");
}

async function psNames(): Promise<string[]> {
  return (await ollama.ps()).models.map((m) => m.name);
}

async function waitUnloaded(): Promise<void> {
  for (let i = 0; i < 50 && (await psNames()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await psNames(), []);
}

test("version, tags and show describe the model without loading it", async () => {
  const version = await ollama.version();
  assert.equal(version.version, "0.12.0");
  assert.equal(typeof (version as unknown as { inferno_version: string }).inferno_version, "string");

  const tags = await ollama.list();
  const tiny = tags.models.find((m) => m.name === "tiny:latest");
  assert.ok(tiny, "tiny:latest is listed");
  assert.equal(tiny.model, "tiny:latest");
  assert.match(tiny.digest, /^[0-9a-f]{64}$/);
  assert.ok(tiny.size > 0);
  assert.ok(!Number.isNaN(Date.parse(String(tiny.modified_at))));
  assert.equal(tiny.details.format, "gguf");
  assert.equal(tiny.details.family, "llama");
  assert.deepEqual(tiny.details.families, ["llama"]);
  assert.ok(tiny.details.parameter_size.length > 0);
  assert.ok(tiny.details.quantization_level.length > 0);

  const show = await ollama.show({ model: "tiny:latest" });
  assert.deepEqual(show.capabilities, ["completion", "embedding"]);
  assert.equal(show.template, ""); // the fixture has no chat template
  assert.match(show.modelfile, /^FROM tiny\.gguf$/m);
  const info = show.model_info as unknown as Record<string, unknown>;
  assert.equal(info["general.architecture"], "llama");
  assert.equal(info["llama.embedding_length"], 16);
  assert.equal(show.details.family, "llama");
  // Older clients send `name` instead of `model`.
  assert.equal((await postJson(`${srv.url}/api/show`, { name: "tiny" })).status, 200);
  assert.deepEqual(await psNames(), []);
});

test("generate: greedy, streamed and not, with Ollama's counters; ps shows the loaded model", async () => {
  const whole = await ollama.generate({ model: "tiny", prompt: "hello world", options: greedy });
  assert.equal(whole.done, true);
  assert.equal(whole.done_reason, "length");
  assert.equal(whole.eval_count, 12);
  assert.ok(whole.prompt_eval_count > 0);
  assert.deepEqual(whole.context, []);
  assert.ok((whole.response ?? "").length > 0);
  assert.ok(whole.load_duration > 0, "the first request loaded the model");
  for (const k of ["total_duration", "prompt_eval_duration", "eval_duration"] as const) {
    assert.ok(Number.isInteger(whole[k]) && whole[k] > 0, k);
  }
  assert.ok(whole.total_duration >= whole.load_duration);

  const parts = await ollama.generate({ model: "tiny", prompt: "hello world", options: greedy, stream: true });
  let text = "";
  let last;
  for await (const part of parts) {
    if (!part.done) text += part.response;
    last = part;
  }
  assert.equal(text, whole.response);
  assert.equal(last?.done_reason, "length");
  assert.equal(last?.eval_count, 12);
  assert.equal(last?.load_duration, 0);

  const ps = (await ollama.ps()).models;
  assert.equal(ps.length, 1);
  assert.equal(ps[0]!.name, "tiny:latest");
  assert.ok(ps[0]!.size > 0);
  assert.equal(ps[0]!.size_vram, 0);
  assert.ok(!Number.isNaN(Date.parse(String(ps[0]!.expires_at))));
});

test("generate streams NDJSON by default", async () => {
  const res = await fetch(`${srv.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "hi", options: greedy }) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/x-ndjson");
  const lines = (await res.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(lines.at(-1).done, true);
  assert.ok(lines.slice(0, -1).every((l) => l.done === false && typeof l.response === "string"));
});

test("raw generate equals the native route; a custom template renders the prompt", async () => {
  const native = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "S: sys\nU: hi\nA:", max_tokens: 12, temperature: 0 });
  const raw = await ollama.generate({ model: "tiny", prompt: "S: sys\nU: hi\nA:", raw: true, options: greedy });
  assert.equal(raw.response, native.body.choices[0].text);
  assert.equal(raw.prompt_eval_count, native.body.usage.prompt_tokens);

  const template = "{{- if .System }}S: {{ .System }}\n{{ end -}}\nU: {{ .Prompt }}\nA:{{ .Response }}</s>{{ .Prompt }}";
  const templated = await ollama.generate({ model: "tiny", prompt: "hi", system: "sys", template, options: greedy });
  assert.equal(templated.response, raw.response);

  const unsupported = await failure(ollama.generate({ model: "tiny", prompt: "hi", template: "{{ range .Messages }}{{ end }}" }));
  assert.equal(unsupported.status, 400);
  assert.match(unsupported.message, /template/);
});

test("chat: streamed and whole replies agree; format constrains the reply to the schema", async () => {
  const messages = [{ role: "system", content: "be brief" }, { role: "user", content: "hello" }];
  const whole = await ollama.chat({ model: "tiny", messages, options: greedy });
  assert.equal(whole.message.role, "assistant");
  assert.equal(whole.done_reason, "length");
  assert.equal(whole.eval_count, 12);
  const parts = await ollama.chat({ model: "tiny:latest", messages, options: greedy, stream: true });
  let text = "";
  for await (const part of parts) text += part.message.content;
  assert.equal(text, whole.message.content);

  const schema = { type: "object", properties: { answer: { type: "string", maxLength: 20 } }, required: ["answer"] };
  const json = await ollama.chat({ model: "tiny", messages, format: schema, options: { temperature: 0, num_predict: 200 } });
  const parsed = JSON.parse(json.message.content) as { answer: unknown };
  assert.equal(typeof parsed.answer, "string");
  assert.ok((parsed.answer as string).length <= 20);
  assert.deepEqual(Object.keys(parsed), ["answer"]);

  // Tools reach the chat template: their documentation alone overflows the fixture's 256-token context.
  const tools = [{ type: "function", function: { name: "get_time", description: "time now", parameters: { type: "object", properties: {} } } }];
  const withTools = await failure(ollama.chat({ model: "tiny", messages, options: greedy, tools }));
  assert.equal(withTools.status, 400);
  assert.match(withTools.message, /the context holds 256/);
});

test("embed returns one unit vector per input; the legacy route one raw vector", async () => {
  const r = await ollama.embed({ model: "tiny", input: ["hello", "world"] });
  assert.equal(r.embeddings.length, 2);
  for (const v of r.embeddings) {
    assert.equal(v.length, 16);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
  }
  assert.ok(r.prompt_eval_count > 0);
  const legacy = await ollama.embeddings({ model: "tiny", prompt: "hello" });
  assert.equal(legacy.embedding.length, 16);
  const scale = Math.hypot(...legacy.embedding);
  legacy.embedding.forEach((x, i) => assert.ok(Math.abs(x / scale - r.embeddings[0]![i]!) < 1e-4));

  // Too long for the 256-token context: cut to fit by default (as Ollama), refused with truncate: false.
  const long = "word ".repeat(400);
  assert.equal((await ollama.embed({ model: "tiny", input: long })).embeddings[0]!.length, 16);
  assert.equal((await failure(ollama.embed({ model: "tiny", input: long, truncate: false }))).status, 400);
});

test("num_ctx reloads the model with that context size", async () => {
  await ollama.generate({ model: "tiny", prompt: "hi", options: { ...greedy, num_ctx: 128 } });
  const ps = (await ollama.ps()).models as unknown as Array<{ context_length: number }>;
  assert.equal(ps[0]!.context_length, 128);
  const again = await ollama.generate({ model: "tiny", prompt: "hi", options: { ...greedy, num_ctx: 128 } });
  assert.equal(again.load_duration, 0, "same num_ctx: no reload");
});

test("errors come in Ollama's shape with Ollama's statuses", async () => {
  const missing = await failure(ollama.generate({ model: "nope", prompt: "hi" }));
  assert.deepEqual(missing, { status: 404, message: "model 'nope' not found" });
  assert.equal((await failure(ollama.chat({ model: "tiny:7b", messages: [{ role: "user", content: "hi" }] }))).status, 404);
  assert.equal((await failure(ollama.show({ model: "nope" }))).status, 404);

  const badType = await failure(ollama.generate({ model: "tiny", prompt: "hi", options: { temperature: "hot" } as never }));
  assert.equal(badType.status, 400);
  const raw = await postJson(`${srv.url}/api/generate`, { model: "tiny", prompt: "hi", options: { num_predict: "many" } });
  assert.equal(raw.status, 400);
  assert.deepEqual(Object.keys(raw.body), ["error"]);
  assert.equal(typeof raw.body.error, "string");

  assert.equal((await failure(ollama.generate({ model: "tiny", prompt: "hi", images: ["aGk="] }))).status, 400);
  assert.equal((await failure(ollama.generate({ model: "tiny", prompt: "hi", think: true }))).status, 400);
  assert.equal((await failure(ollama.generate({ model: "tiny", prompt: "hi", keep_alive: "soon" }))).status, 400);
  // Options Ollama defines but the server owns are accepted and ignored.
  const ignored = await ollama.generate({ model: "tiny", prompt: "hi", options: { ...greedy, num_thread: 8, mirostat: 2, num_gpu: 99 } });
  assert.equal(ignored.eval_count, 12);
});

test("keep_alive 0 unloads; an empty prompt loads or unloads", async () => {
  await ollama.generate({ model: "tiny", prompt: "hi", options: greedy, keep_alive: 0 });
  await waitUnloaded();

  // The registry keeps the last keep_alive per model (Ollama reverts to its default), so name one.
  const load = await ollama.generate({ model: "tiny", prompt: "", keep_alive: "5m" });
  assert.equal(load.done, true);
  assert.equal(load.done_reason, "load");
  assert.deepEqual(await psNames(), ["tiny:latest"]);
  const unload = await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0 });
  assert.equal(unload.done_reason, "unload");
  await waitUnloaded();
});
