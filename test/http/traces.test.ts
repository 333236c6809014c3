// Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseTraceparent, SpanBuffer, type SpanRecord } from "../../src/observability/traces.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
});
after(() => srv.cleanup());

/** The spans of one trace, once `count` of them have ended (a request's span ends when its response closes). */
async function spansOf(traceId: string, count: number): Promise<SpanRecord[]> {
  for (let i = 0; ; i++) {
    const res = await fetch(`${srv.url}/traces?trace_id=${traceId}`);
    assert.equal(res.status, 200);
    const spans = ((await res.json()) as { traces: SpanRecord[] }).traces;
    if (spans.length >= count || i === 200) return spans;
    await sleep(10);
  }
}

const byName = (spans: SpanRecord[], name: string) => {
  const span = spans.find((s) => s.operation_name === name);
  assert.ok(span, `no ${name} span in ${spans.map((s) => s.operation_name).join(", ")}`);
  return span;
};

test("traceparent parsing follows W3C trace context", () => {
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentId: PARENT, flags: "01" });
  assert.deepEqual(parseTraceparent(`01-${TRACE}-${PARENT}-00-future-fields`), { traceId: TRACE, parentId: PARENT, flags: "00" });
  for (const bad of [
    undefined, "", "garbage", `00-${TRACE}-${PARENT}`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, `00-${"0".repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`, `ff-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01-extra`, `00-${TRACE}x-${PARENT}-01`,
    [`00-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01`],
  ]) assert.equal(parseTraceparent(bad), undefined, String(bad));
});

test("a request with a valid traceparent keeps its trace: request, model load, queue wait and generation spans", async () => {
  await postJson(`${srv.url}/models/tiny/unload`, {});
  const r = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello world", max_tokens: 7, temperature: 0 }, {
    headers: { "content-type": "application/json", traceparent: `00-${TRACE}-${PARENT}-01` },
  });
  assert.equal(r.status, 200);
  const echoed = TRACEPARENT.exec(r.headers.get("traceparent") ?? "");
  assert.ok(echoed, "the response carries a traceparent");
  assert.equal(echoed[1], TRACE);
  assert.notEqual(echoed[2], PARENT, "our span is the new parent");
  assert.equal(echoed[3], "01", "the sampled flag is kept");

  const spans = await spansOf(TRACE, 4);
  const request = byName(spans, "POST /inference");
  assert.equal(request.span_id, echoed[2]);
  assert.equal(request.parent_span_id, PARENT);
  assert.equal(request.status, "ok");
  assert.equal(request.attributes["http.status_code"], 200);
  assert.equal(request.attributes["http.route"], "/inference");
  for (const name of ["model.load", "queue.wait", "generation"]) {
    const child = byName(spans, name);
    assert.equal(child.trace_id, TRACE);
    assert.equal(child.parent_span_id, request.span_id, name);
    assert.equal(child.attributes.model, "tiny");
    assert.equal(child.status, "ok");
    assert.ok(child.duration_ms >= 0 && child.duration_ms <= request.duration_ms + 1, name);
    assert.ok(Date.parse(child.start_time) >= Date.parse(request.start_time) - 1, `${name} starts inside the request`);
  }
  const generation = byName(spans, "generation");
  assert.equal(generation.attributes.completion_tokens, r.body.usage.completion_tokens);
  assert.equal(generation.attributes.prompt_tokens, r.body.usage.prompt_tokens);
  assert.match(request.start_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test("a streamed (hijacked) response carries traceparent too, and its generation span hangs under the request", async () => {
  const trace = "0af7651916cd43dd8448eb211c80319c";
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json", traceparent: `00-${trace}-b7ad6b7169203331-00` },
    body: JSON.stringify({ model: "tiny", prompt: "hello", max_tokens: 5, temperature: 0 }),
  });
  const echoed = TRACEPARENT.exec(res.headers.get("traceparent") ?? "");
  assert.ok(echoed);
  assert.equal(echoed[1], trace);
  const events = await readSse(res);
  const spans = await spansOf(trace, 3);
  const request = byName(spans, "POST /inference/stream");
  assert.equal(request.span_id, echoed[2]);
  const generation = byName(spans, "generation");
  assert.equal(generation.parent_span_id, request.span_id);
  assert.equal(generation.attributes.completion_tokens, events.at(-1).usage.completion_tokens);
});

test("an invalid traceparent starts a new trace", async () => {
  for (const header of [`00-${"0".repeat(32)}-${PARENT}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, "nonsense"]) {
    const res = await fetch(`${srv.url}/health`, { headers: { traceparent: header } });
    const echoed = TRACEPARENT.exec(res.headers.get("traceparent") ?? "");
    assert.ok(echoed, header);
    assert.notEqual(echoed[1], TRACE);
    assert.notEqual(echoed[1], "0".repeat(32));
    const [span] = await spansOf(echoed[1]!, 1);
    assert.equal(span?.parent_span_id, null, "a root span");
    assert.equal(span?.operation_name, "GET /health");
  }
});

test("errors: 404 of an unknown model is an ok request span; a client error is not a server error", async () => {
  const r = await postJson(`${srv.url}/inference`, { model: "nope", prompt: "x" });
  assert.equal(r.status, 404);
  const trace = TRACEPARENT.exec(r.headers.get("traceparent") ?? "")![1]!;
  const [span] = await spansOf(trace, 1);
  assert.equal(span?.attributes["http.status_code"], 404);
  assert.equal(span?.status, "ok");
});

test("the ring buffer keeps the newest spans only; /traces filters and limits", async () => {
  const ring = new SpanBuffer(5);
  for (let i = 0; i < 12; i++) {
    ring.push({ trace_id: i % 2 ? "odd" : "even", span_id: String(i), parent_span_id: null, operation_name: "x", start_time: "", duration_ms: 0, status: "ok", attributes: {} });
  }
  assert.deepEqual(ring.recent(100).map((s) => s.span_id), ["11", "10", "9", "8", "7"]);
  assert.deepEqual(ring.recent(2).map((s) => s.span_id), ["11", "10"]);
  assert.deepEqual(ring.recent(100, "odd").map((s) => s.span_id), ["11", "9", "7"]);

  for (let i = 0; i < 5; i++) await fetch(`${srv.url}/health`);
  const limited = (await (await fetch(`${srv.url}/traces?limit=3`)).json()) as { traces: SpanRecord[] };
  assert.equal(limited.traces.length, 3);
  const all = (await (await fetch(`${srv.url}/traces?limit=100000`)).json()) as { traces: SpanRecord[] };
  assert.ok(all.traces.length <= 1000);
  for (const q of ["limit=0", "limit=abc", "trace_id=xyz"]) assert.equal((await fetch(`${srv.url}/traces?${q}`)).status, 400, q);
});
