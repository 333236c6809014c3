// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI. A lone stream through HTTP runs on
// the native generation loop (patches/node-llama-cpp-generate-tokens.patch, src/runtimes/llama/native-generation.ts),
// which decodes ahead of the reader: a stream ended by a stop string or by its client leaves the one sequence
// in a state from which the same request gives the same text again; and with eight clients that come, leave and
// mix plain and penalised sampling (streams joining, leaving and stopping loops), every whole greedy stream is
// the text it gets alone, and nothing stays in flight; with streamIntervalMs, tokens are posted in groups and every
// stream (native and OpenAI routes, alone and eight at once) is still the same text.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { LlamaContext } from "node-llama-cpp";
import { loopTotals, recordNativeLoops, type RecordedLoop } from "../helpers/native-loops.js";
import { realModel } from "../helpers/paths.js";
import { readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
let srv: TestServer;
/** The native loops run on the model's context (undefined without the patched addon). */
let loops: RecordedLoop[] | undefined;

before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories: stories.path }, config: { contextSize: 1024, parallel: 1 } });
  const load = await fetch(`${srv.url}/models/stories/load`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(load.status, 200);
  const context = (srv.app.registry.getLoaded("stories") as unknown as { context: LlamaContext }).context;
  loops = recordNativeLoops(context);
});
after(() => srv?.cleanup());

const PROMPT = "Once upon a time, there was a little girl named Lily.";
const request = (extra: object, signal?: AbortSignal) =>
  fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "stories", prompt: PROMPT, max_tokens: 150, temperature: 0, ignore_eos: true, ...extra }),
    ...(signal ? { signal } : {}),
  });
const text = (events: any[]) => events.map((e) => e.token ?? "").join("");

test("a lone stream runs on the native loop; after a stop string and a client that left, the same request gives the same text", { skip: stories.skip }, async (t) => {
  if (!loops) {
    assert.notEqual(process.env.CI, "true", "the addon has no generateTokens: patches/node-llama-cpp-generate-tokens.patch is not built in");
    t.skip("the addon has no generateTokens (npm run build:llama-addon)");
    return;
  }
  const first = await readSse(await request({}));
  const full = text(first);
  assert.equal(first.at(-1)?.usage?.completion_tokens, 150);
  assert.ok(loops.length >= 1 && loops[0]!.sampled[0]! >= 140, `the stream's tokens came from a native loop: ${JSON.stringify(loops)}`);

  // A stop string in the middle: the loop had decoded past it.
  const stop = full.slice(200, 212);
  const stopped = await readSse(await request({ stop: [stop] }));
  assert.equal(text(stopped), full.slice(0, full.indexOf(stop)));

  // A client that leaves after its first events.
  const controller = new AbortController();
  const res = await request({}, controller.signal);
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  controller.abort();
  await reader.cancel().catch(() => undefined);

  const again = await readSse(await request({}));
  assert.equal(text(again), full, "the same text after the sequence was left mid-way twice");
  t.diagnostic(`tokens sampled by each native loop: ${JSON.stringify(loops.map((l) => l.sampled))}`);
});

test("eight clients that come, leave mid-stream and mix sampling: every whole greedy stream is its text alone", { skip: stories.skip }, async (t) => {
  if (!loops) return; // said by the test above
  const busy = await startTestServer({ models: { stories: stories.path }, config: { contextSize: 1024, parallel: 8 } });
  t.after(() => busy.cleanup());
  const ask = (body: object, signal?: AbortSignal) =>
    fetch(`${busy.url}/inference/stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories", prompt: PROMPT, temperature: 0, ignore_eos: true, ...body }),
      ...(signal ? { signal } : {}),
    });
  const alone = text(await readSse(await ask({ max_tokens: 120 })));
  const context = (busy.app.registry.getLoaded("stories") as unknown as { context: LlamaContext }).context;
  const busyLoops = recordNativeLoops(context)!;
  // A seeded choice of what each client does; when a leaving client leaves depends on the machine.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let whole = 0;
  const client = async () => {
    const kind = random();
    const leave = new AbortController();
    const timer = kind >= 0.8 ? setTimeout(() => leave.abort(), random() * 40) : undefined;
    const body = kind < 0.4 ? { max_tokens: 120 } : kind < 0.55 ? { max_tokens: 80, stop: ["the"] } : kind < 0.7 ? { max_tokens: 60, repeat_penalty: 1.1 } : { max_tokens: 40 + Math.floor(random() * 100) };
    try {
      const events = await readSse(await ask(body, leave.signal));
      assert.ok(events.at(-1)?.usage, `a stream that was not left ends with its usage: ${JSON.stringify(events.at(-1))}`);
      if (kind < 0.4) {
        assert.equal(text(events), alone, "a whole greedy stream among the others: its text alone");
        whole++;
      }
    } catch (err) {
      if (!leave.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
    }
  };
  for (let round = 0; round < 12; round++) await Promise.all(Array.from({ length: 8 }, client));
  const last = await readSse(await ask({ max_tokens: 120 }));
  assert.equal(text(last), alone, "after it all, the same request gives the same text");
  const metrics = await (await fetch(`${busy.url}/metrics`)).text();
  assert.match(metrics, /^inferno_requests_in_flight 0$/m, "nothing left in flight");
  const widest = Math.max(...busyLoops.map((l) => l.sampled.length));
  t.diagnostic(`${whole} whole greedy streams compared; ${busyLoops.length} native loops, the widest with ${widest} streams`);
  assert.ok(whole >= 20, `${whole} whole greedy streams`);
  assert.ok(widest >= 4, "streams joined running loops");
});

test("with streamIntervalMs, tokens reach the routes in groups and every stream is the same text, alone or eight at once", { skip: stories.skip }, async (t) => {
  if (!loops) return; // said by the first test
  const grouped = await startTestServer({ models: { stories: stories.path }, config: { contextSize: 1024, parallel: 8, streamIntervalMs: 50 } });
  t.after(() => grouped.cleanup());
  const stream = (base: string, route: string, body: object) =>
    fetch(`${base}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then(readSse);
  const native = { model: "stories", prompt: PROMPT, max_tokens: 150, temperature: 0, ignore_eos: true };
  const chat = { model: "stories", messages: [{ role: "user", content: PROMPT }], max_tokens: 100, temperature: 0, stream: true };
  const chatText = (events: any[]) => events.map((e) => e.choices?.[0]?.delta?.content ?? "").join("");

  const expected = text(await stream(srv.url, "/inference/stream", native));
  const expectedChat = chatText(await stream(srv.url, "/v1/chat/completions", chat));
  const load = await fetch(`${grouped.url}/models/stories/load`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(load.status, 200);
  const groupedLoops = recordNativeLoops((grouped.app.registry.getLoaded("stories") as unknown as { context: LlamaContext }).context)!;
  const alone = await stream(grouped.url, "/inference/stream", native);
  assert.equal(text(alone), expected);
  assert.equal(alone.at(-1)?.usage?.completion_tokens, 150);
  assert.equal(chatText(await stream(grouped.url, "/v1/chat/completions", chat)), expectedChat);
  const eight = await Promise.all(Array.from({ length: 8 }, () => stream(grouped.url, "/inference/stream", native)));
  for (const events of eight) assert.equal(text(events), expected, "each of eight streams at once: its text alone");

  const { sampled, deliveries } = loopTotals(groupedLoops);
  t.diagnostic(`${groupedLoops.length} native loops sampled ${sampled} tokens, delivered in ${deliveries} goes`);
  assert.ok(sampled >= 9 * 90, `the streams ran on native loops: ${sampled} tokens`);
  // Groups of up to half the window (4), each stream's first token in a loop on its own.
  assert.ok(deliveries * 3 <= sampled, `tokens were posted in groups: ${deliveries} deliveries of ${sampled} tokens`);
});
