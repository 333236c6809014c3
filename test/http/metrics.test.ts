// Needs no external model: a tiny llama GGUF (twice: short and long context) and a linear ONNX
// classifier are generated at test time.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, readSse, startTestServer, waitIdle, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let cleanupFixture: () => Promise<void>;
const greedy = { model: "tiny", prompt: "hello world", temperature: 0 };

before(async () => {
  const tmp = await tempDir();
  cleanupFixture = tmp.cleanup;
  const long = path.join(tmp.dir, "long.gguf");
  await writeTinyLlamaGguf(long, { contextLength: 8192 });
  srv = await startTestServer({ tinyModels: ["tiny"], models: { long }, files: { "lin.onnx": linearClassifierOnnx() } });
});
after(async () => {
  await srv.cleanup();
  await cleanupFixture();
});

type Labels = Record<string, string>;
interface Sample {
  name: string;
  labels: Labels;
  value: number;
}
interface Scrape {
  types: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/;
const LABEL_PAIR = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(?:,|$)/y;
// Prometheus reads values with Go's ParseFloat, so NaN and Inf in any case (prom-client writes "Nan").
const NUMBER = /^(?:nan|[+-]?inf|[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i;
const SUFFIXES: Record<string, string[]> = { histogram: ["_bucket", "_sum", "_count"], summary: ["", "_sum", "_count"] };

function parseLabels(text: string): Labels {
  const labels: Labels = {};
  LABEL_PAIR.lastIndex = 0;
  while (LABEL_PAIR.lastIndex < text.length) {
    const m = LABEL_PAIR.exec(text);
    assert.ok(m, `malformed labels: {${text}}`);
    assert.equal(labels[m[1]!], undefined, `duplicate label ${m[1]}`);
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return labels;
}

/** Prometheus text format 0.0.4: every line is HELP, TYPE or a sample of a family declared before it. */
function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      assert.ok(m, `comment is neither HELP nor TYPE: ${line}`);
      assert.match(m[2]!, METRIC_NAME);
      if (m[1] === "TYPE") {
        assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3]!), `bad type: ${line}`);
        assert.ok(!types.has(m[2]!), `family declared twice: ${m[2]}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    assert.match(m[3]!, NUMBER, `bad value: ${line}`);
    const sample = { name: m[1]!, labels: parseLabels(m[2] ?? ""), value: /nan/i.test(m[3]!) ? NaN : Number(m[3]!.replace(/inf/i, "Infinity")) };
    const family = [...types].find(([f, t]) => (SUFFIXES[t] ?? [""]).some((s) => f + s === sample.name));
    assert.ok(family, `sample of no declared family: ${line}`);
    if (family[1] === "histogram" && sample.name.endsWith("_bucket")) assert.ok("le" in sample.labels, `bucket without le: ${line}`);
    samples.push(sample);
  }
  return { types, samples };
}

const matches = (s: Sample, name: string, labels: Labels) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
const total = (scrape: Scrape, name: string, labels: Labels = {}) =>
  scrape.samples.filter((s) => matches(s, name, labels)).reduce((sum, s) => sum + s.value, 0);
const labelValues = (scrape: Scrape, name: string, label: string) =>
  new Set(scrape.samples.filter((s) => s.name === name).map((s) => s.labels[label]));

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${srv.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** A scrape once every earlier response has closed (the scrape itself is never in flight). */
async function settled(): Promise<Scrape> {
  for (let i = 0; ; i++) {
    const s = await scrape();
    if (total(s, "inferno_requests_in_flight") === 0 || i === 200) return s;
    await sleep(10);
  }
}

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${srv.url}${url}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

test("/metrics is Prometheus text: every family declared, inferno and process metrics present", async () => {
  const s = await scrape();
  for (const [name, type] of [
    ["inferno_inference_requests_total", "counter"], ["inferno_inference_duration_seconds", "histogram"],
    ["inferno_time_to_first_token_seconds", "histogram"], ["inferno_prompt_tokens_total", "counter"],
    ["inferno_generated_tokens_total", "counter"], ["inferno_requests_in_flight", "gauge"], ["inferno_queue_depth", "gauge"],
    ["inferno_models_loaded", "gauge"], ["inferno_model_load_duration_seconds", "histogram"],
    ["inferno_model_memory_bytes", "gauge"], ["inferno_model_unloads_total", "counter"], ["inferno_rate_limited_total", "counter"],
    ["inferno_auth_failures_total", "counter"], ["inferno_model_runs_total", "counter"], ["inferno_model_run_items_total", "counter"],
    ["process_cpu_seconds_total", "counter"], ["nodejs_heap_size_used_bytes", "gauge"], ["nodejs_eventloop_lag_p99_seconds", "gauge"],
  ]) assert.equal(s.types.get(name!), type, name);
  assert.equal(total(s, "inferno_requests_in_flight"), 0, "the scrape does not count itself");
  // Other plugins feed these through the decoration.
  srv.app.metrics.authFailures.inc({ reason: "missing_credentials" });
  srv.app.metrics.rateLimited.inc({ limit: "requests_per_minute" });
  const again = await scrape();
  assert.equal(total(again, "inferno_auth_failures_total", { reason: "missing_credentials" }), 1);
  assert.equal(total(again, "inferno_rate_limited_total", { limit: "requests_per_minute" }), 1);
});

test("requests, tokens, TTFT and durations move by exactly what the requests did", async () => {
  const before = await settled();
  const a = await postJson(`${srv.url}/inference`, { ...greedy, max_tokens: 8 });
  const b = await postJson(`${srv.url}/inference`, { ...greedy, prompt: "once upon a time", max_tokens: 5 });
  const events = await readSse(await post("/inference/stream", { ...greedy, max_tokens: 6 }));
  const missingRoute = await fetch(`${srv.url}/no/such/route`);
  const missingModel = await postJson(`${srv.url}/inference`, { ...greedy, model: "nope" });
  assert.deepEqual([a.status, b.status, missingRoute.status, missingModel.status], [200, 200, 404, 404]);
  const streamed = events.at(-1).usage;
  const after = await settled();
  const delta = (name: string, labels: Labels = {}) => total(after, name, labels) - total(before, name, labels);

  const requests = "inferno_inference_requests_total";
  assert.equal(delta(requests, { model: "tiny", route: "/inference", status: "200" }), 2);
  assert.equal(delta(requests, { model: "tiny", route: "/inference/stream", status: "200" }), 1);
  assert.equal(delta(requests, { model: "none", route: "unmatched", status: "404" }), 1);
  assert.equal(delta(requests, { model: "unknown", route: "/inference", status: "404" }), 1);
  assert.equal(delta(requests), 5, "the scrapes are not counted");
  const completion = a.body.usage.completion_tokens + b.body.usage.completion_tokens + streamed.completion_tokens;
  const prompt = a.body.usage.prompt_tokens + b.body.usage.prompt_tokens + streamed.prompt_tokens;
  assert.equal(completion, 8 + 5 + 6);
  assert.equal(delta("inferno_generated_tokens_total", { model: "tiny" }), completion);
  assert.equal(delta("inferno_prompt_tokens_total", { model: "tiny" }), prompt);
  assert.equal(delta("inferno_time_to_first_token_seconds_count", { model: "tiny" }), 3);
  assert.equal(delta("inferno_inference_duration_seconds_count", { model: "tiny", route: "/inference" }), 2);
  assert.equal(delta("inferno_inference_duration_seconds_count", { model: "tiny", route: "/inference/stream" }), 1);
  assert.equal(
    total(after, "inferno_inference_duration_seconds_bucket", { model: "tiny", route: "/inference/stream", le: "+Inf" }),
    total(after, "inferno_inference_duration_seconds_count", { model: "tiny", route: "/inference/stream" }),
  );
  assert.equal(total(after, "inferno_requests_in_flight"), 0);
});

test("a stream the client leaves: in flight while it runs, then 0 and counted as 499; waiting requests show as queue depth", async () => {
  const load = await postJson(`${srv.url}/models/long/load`, { context_size: 8192, parallel: 1 });
  assert.equal(load.status, 200, JSON.stringify(load.body));
  const before = await settled();
  const leaving = new AbortController();
  const waiting = new AbortController();
  const res = await post("/inference/stream", { model: "long", prompt: "hello", max_tokens: 4000, temperature: 0 }, leaving.signal);
  const reader = res.body!.getReader();
  await reader.read(); // generating: the model's one sequence is taken
  const queued = post("/inference", { model: "long", prompt: "queued", max_tokens: 2 }, waiting.signal).catch(() => undefined);
  let during = await scrape();
  for (let i = 0; i < 200 && total(during, "inferno_queue_depth", { model: "long" }) === 0; i++) during = (await sleep(5), await scrape());
  assert.equal(total(during, "inferno_queue_depth", { model: "long" }), 1);
  assert.equal(total(during, "inferno_requests_in_flight"), 2);
  waiting.abort();
  leaving.abort();
  await reader.cancel().catch(() => undefined);
  await queued;
  const after = await settled();
  assert.equal(total(after, "inferno_requests_in_flight"), 0);
  assert.equal(total(after, "inferno_queue_depth", { model: "long" }), 0);
  const closed = { route: "/inference/stream", status: "499", model: "long" };
  assert.equal(total(after, "inferno_inference_requests_total", closed) - total(before, "inferno_inference_requests_total", closed), 1);
  // The metrics count the stream out when its client leaves; the model, once its generation has stopped.
  const long = srv.app.registry.getLoaded("long")!;
  await waitIdle(long);
  assert.equal(long.inFlight, 0, "the streams left the model");
  const unload = await postJson(`${srv.url}/models/long/unload`, {});
  assert.equal(unload.status, 200, JSON.stringify(unload.body));
});

test("models_loaded and load durations follow loads and unloads; ONNX requests are counted per model", async () => {
  await postJson(`${srv.url}/models/lin/unload`, {});
  const before = await settled();
  const loaded = total(before, "inferno_models_loaded");
  assert.equal((await postJson(`${srv.url}/models/lin/load`, {})).status, 200);
  const r = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: [[1, 2, 3, 4]] } });
  assert.equal(r.status, 200);
  const mid = await settled();
  assert.equal(total(mid, "inferno_models_loaded"), loaded + 1);
  assert.equal(total(mid, "inferno_model_load_duration_seconds_count", { model: "lin" }) - total(before, "inferno_model_load_duration_seconds_count", { model: "lin" }), 1);
  assert.equal(total(mid, "inferno_queue_depth", { model: "lin" }), 0);
  const memory = srv.app.registry.getLoaded("lin")!.memoryUsage();
  assert.equal(total(mid, "inferno_model_memory_bytes", { model: "lin", kind: "ram" }), memory.ram);
  assert.equal(total(mid, "inferno_model_memory_bytes", { model: "lin", kind: "vram" }), 0);
  assert.ok(labelValues(mid, "inferno_queue_depth", "model").has("lin"));
  const onnx = { model: "lin", route: "/models/:id/inference", status: "200" };
  assert.equal(total(mid, "inferno_inference_requests_total", onnx) - total(before, "inferno_inference_requests_total", onnx), 1);
  await postJson(`${srv.url}/models/lin/unload`, {});
  const after = await settled();
  assert.equal(total(after, "inferno_models_loaded"), loaded);
  const unloads = { model: "lin", reason: "request" };
  assert.equal(total(after, "inferno_model_unloads_total", unloads) - total(mid, "inferno_model_unloads_total", unloads), 1);
  assert.ok(!labelValues(after, "inferno_model_memory_bytes", "model").has("lin"));
  assert.ok(!labelValues(after, "inferno_queue_depth", "model").has("lin"), "an unloaded model has no queue series");
});

test("50 requests for made-up model ids add no model label value but 'unknown'", async () => {
  const known = new Set([...labelValues(await settled(), "inferno_inference_requests_total", "model"), "unknown"]);
  for (let i = 0; i < 50; i++) {
    const id = `m-${randomBytes(6).toString("hex")}`;
    const r = i % 2 ? await postJson(`${srv.url}/inference`, { ...greedy, model: id }) : await postJson(`${srv.url}/models/${id}/inference`, { prompt: "x" });
    assert.equal(r.status, 404);
  }
  const s = await settled();
  for (const name of ["inferno_inference_requests_total", "inferno_inference_duration_seconds_bucket"]) {
    assert.deepEqual([...labelValues(s, name, "model")].filter((m) => !known.has(m!)), [], name);
  }
});

test("custom metrics: gauges set, counters add, bad input is a 400", async () => {
  const custom = (body: unknown) => postJson(`${srv.url}/metrics/custom`, body);
  let r = await custom({ name: "custom_metric", value: 42.5, type: "gauge", labels: { environment: "production" } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { name: "inferno_custom_custom_metric", type: "gauge", labels: { environment: "production" }, value: 42.5 });
  await custom({ name: "custom_metric", value: 7, type: "gauge", labels: { environment: "production" } });
  await custom({ name: "jobs", value: 2, type: "counter" });
  r = await custom({ name: "jobs", value: 3, type: "counter" });
  assert.equal(r.body.value, 5);
  const s = await scrape();
  assert.equal(s.types.get("inferno_custom_custom_metric"), "gauge");
  assert.equal(total(s, "inferno_custom_custom_metric", { environment: "production" }), 7);
  assert.equal(s.types.get("inferno_custom_jobs"), "counter");
  assert.equal(total(s, "inferno_custom_jobs"), 5);

  for (const [bad, why] of [
    [{ name: "bad-name", value: 1, type: "gauge" }, "name"],
    [{ name: "ns:name", value: 1, type: "gauge" }, "colon"],
    [{ name: "x".repeat(101), value: 1, type: "gauge" }, "long name"],
    [{ name: "g", value: 1, type: "histogram" }, "type"],
    [{ name: "g", value: "1", type: "gauge" }, "value"],
    [{ name: "g", value: 1, type: "gauge", labels: { "bad-label": "x" } }, "label name"],
    [{ name: "g", value: 1, type: "gauge", labels: { __reserved: "x" } }, "reserved label"],
    [{ name: "g", value: 1, type: "gauge", labels: { ok: "line\nbreak" } }, "label value"],
    [{ name: "g", value: 1, type: "gauge", labels: { ok: 3 } }, "label value type"],
    [{ name: "jobs", value: -1, type: "counter" }, "negative counter"],
    [{ name: "jobs", value: 1, type: "gauge" }, "type mismatch"],
    [{ name: "custom_metric", value: 1, type: "gauge", labels: { region: "eu" } }, "label names mismatch"],
  ] as const) {
    const res = await custom(bad);
    assert.equal(res.status, 400, why);
    assert.equal(res.body.error.code, "INVALID_REQUEST", why);
  }
  assert.equal(total(await scrape(), "inferno_custom_jobs"), 5, "refused samples change nothing");
});

test("custom metrics are bounded: 100 label sets per metric, 100 metrics", async () => {
  const custom = (body: unknown) => postJson(`${srv.url}/metrics/custom`, body);
  for (let i = 0; i < 100; i++) assert.equal((await custom({ name: "per_shard", value: i, type: "gauge", labels: { shard: String(i) } })).status, 200);
  assert.equal((await custom({ name: "per_shard", value: 1, type: "gauge", labels: { shard: "0" } })).status, 200, "an existing set still updates");
  const tooManySeries = await custom({ name: "per_shard", value: 1, type: "gauge", labels: { shard: "100" } });
  assert.equal(tooManySeries.status, 400);
  assert.match(tooManySeries.body.error.message, /100 label sets/);

  const existing = [...(await scrape()).types.keys()].filter((n) => n.startsWith("inferno_custom_")).length;
  for (let i = existing; i < 100; i++) assert.equal((await custom({ name: `filler_${i}`, value: 1, type: "gauge" })).status, 200);
  const tooMany = await custom({ name: "one_more", value: 1, type: "gauge" });
  assert.equal(tooMany.status, 400);
  assert.match(tooMany.body.error.message, /100 custom metrics/);
  assert.equal((await custom({ name: "filler_99", value: 2, type: "gauge" })).status, 200, "existing metrics still update");
  parseExposition(await (await fetch(`${srv.url}/metrics`)).text());
});
