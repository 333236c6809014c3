// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI. Linux: the batching patch is
// applied by npm's postinstall (scripts/patch-node-llama-cpp.sh, patches/node-llama-cpp-batching.patch).
// Streams generating together share each llama_decode: with 4 streams on 4 sequences, every decode
// carries 4 tokens, on the native loop (patches/node-llama-cpp-generate-tokens.patch, streams joining one
// loop) and on node-llama-cpp's own batches (INFERNO_LLAMA_NATIVE_LOOP=0, as for requests that may not run
// natively). node-llama-cpp as published left one sequence out of every batch (3 tokens a decode, one
// sequence always a step behind), which is what the batching patch fixes; and each stream's text is the one
// it gets alone. Seen through /metrics, which counts
// the decodes and the tokens they carry (inferno_model_runs_total, inferno_model_run_items_total).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { LlamaContext } from "node-llama-cpp";
import { recordNativeLoops } from "../helpers/native-loops.js";
import { realModel, repoRoot } from "../helpers/paths.js";
import { readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const patchFile = path.join(repoRoot, "patches/node-llama-cpp-batching.patch");
const target = path.join(repoRoot, "node_modules/node-llama-cpp");
/** The patch is in node_modules when it would come out cleanly. */
const applied = () => spawnSync("patch", ["--dry-run", "--silent", "--force", "-R", "-p1", "-d", target, "-i", patchFile]).status === 0;
const skip = stories.skip || (process.platform !== "linux" ? "Linux only" : !applied() && process.env.CI !== "true" ? "node-llama-cpp is not patched (npm run build:llama-addon)" : false);
const STREAMS = 4;

/** A server with stories260K on 4 sequences; with `nativeLoop` false, node-llama-cpp's batches only. */
async function server(nativeLoop: boolean): Promise<TestServer> {
  const previous = process.env.INFERNO_LLAMA_NATIVE_LOOP;
  if (!nativeLoop) process.env.INFERNO_LLAMA_NATIVE_LOOP = "0";
  try {
    const srv = await startTestServer({ models: { stories: stories.path }, config: { contextSize: 1024, parallel: STREAMS } });
    const load = await fetch(`${srv.url}/models/stories/load`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(load.status, 200);
    return srv;
  } finally {
    if (previous === undefined) delete process.env.INFERNO_LLAMA_NATIVE_LOOP;
    else process.env.INFERNO_LLAMA_NATIVE_LOOP = previous;
  }
}

async function runCounters(srv: TestServer): Promise<{ runs: number; items: number }> {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{model="stories"\\} (\\d+)`, "m").exec(text)?.[1] ?? NaN);
  return { runs: value("inferno_model_runs_total"), items: value("inferno_model_run_items_total") };
}

/** The run counters once the last stream's loop has been counted: two reads 25 ms apart that agree. */
async function settledCounters(srv: TestServer): Promise<{ runs: number; items: number }> {
  let last = await runCounters(srv);
  for (let i = 0; i < 40; i++) {
    await sleep(25);
    const now = await runCounters(srv);
    if (now.runs === last.runs && now.items === last.items) return now;
    last = now;
  }
  return last;
}

const stream = (srv: TestServer, prompt: string) =>
  fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "stories", prompt, max_tokens: 200, temperature: 0, ignore_eos: true }),
  }).then(readSse);

test("node-llama-cpp carries the batching patch", { skip }, () => {
  assert.ok(applied(), "patches/node-llama-cpp-batching.patch is not applied to node_modules/node-llama-cpp");
});

async function fourStreams(t: TestContext, srv: TestServer): Promise<void> {
  // Each prompt alone first: generated together (one decode, sampled in one call), the texts must not change.
  const text = (events: any[]) => events.map((e) => e.token ?? "").join("");
  const alone: string[] = [];
  for (let i = 0; i < STREAMS; i++) alone.push(text(await stream(srv, `Once upon a time ${i}`)));
  // A native loop's decodes are counted when it ends, which can be just after its stream's last byte went out.
  const before = await settledCounters(srv);
  assert.ok(Number.isFinite(before.runs) && Number.isFinite(before.items), "the model's run counters are on /metrics");
  const events = await Promise.all(Array.from({ length: STREAMS }, (_, i) => stream(srv, `Once upon a time ${i}`)));
  for (const e of events) assert.equal(e.filter((x) => typeof x.token === "string").length > 0 && e.at(-1)?.usage?.completion_tokens, 200);
  events.forEach((e, i) => assert.equal(text(e), alone[i], `stream ${i}: the same text as alone`));
  const now = await settledCounters(srv);
  const runs = now.runs - before.runs;
  const tokens = now.items - before.items;
  const mean = tokens / runs;
  t.diagnostic(`${runs} decodes carried ${tokens} tokens: ${mean.toFixed(2)} a decode`);
  // 800 generated tokens and 4 short prompts; a few decodes while the streams start and end carry fewer.
  assert.ok(tokens >= STREAMS * 200, `${tokens} tokens counted`);
  assert.ok(mean >= STREAMS - 0.4, `${mean.toFixed(2)} tokens a decode; one sequence a step behind gives about ${STREAMS - 1}`);
}

test("streams generating together share every decode: 4 streams, 4 tokens a decode, on the native loop", { skip }, async (t) => {
  const srv = await server(true);
  t.after(() => srv.cleanup());
  const loops = recordNativeLoops((srv.app.registry.getLoaded("stories") as unknown as { context: LlamaContext }).context);
  if (!loops) {
    assert.notEqual(process.env.CI, "true", "the addon has no generateTokens: patches/node-llama-cpp-generate-tokens.patch is not built in");
    t.skip("the addon has no generateTokens (npm run build:llama-addon)");
    return;
  }
  await fourStreams(t, srv);
  assert.ok(loops.some((l) => l.sampled.length === STREAMS && l.sampled.every((n) => n >= 150)), `the four streams ran in one loop: ${JSON.stringify(loops.map((l) => l.sampled))}`);
});

test("the same on node-llama-cpp's batches (INFERNO_LLAMA_NATIVE_LOOP=0)", { skip }, async (t) => {
  const srv = await server(false);
  t.after(() => srv.cleanup());
  await fourStreams(t, srv);
});
