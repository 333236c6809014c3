// SIGTERM drains a real `inferno serve` child (dist/src/cli.js): open streams of every dialect finish
// within the grace or end with a coded SERVICE_UNAVAILABLE event, new connections are refused, the exit
// code is 0, and a batch interrupted by the shutdown finishes exactly once after a restart.
// Needs no external model: a tiny llama GGUF with a 64k context is generated at test time (greedy, it
// never stops before max_tokens, so a stream is as long as asked).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import Database from "better-sqlite3";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli, type ServedCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";

interface WsClient {
  readonly readyState: number;
  send(data: string): void;
  on(event: "open", listener: () => void): void;
  on(event: "message", listener: (data: Buffer) => void): void;
  on(event: "close", listener: (code: number) => void): void;
  on(event: "error", listener: (err: Error) => void): void;
}
const WebSocket = createRequire(import.meta.url)("ws") as new (url: string) => WsClient;
type Msg = Record<string, any>;

/** A WebSocket that keeps every message; `closed` resolves with the close code. */
async function openWs(url: string) {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws`);
  const messages: Msg[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(data.toString()) as Msg));
  ws.on("error", () => {});
  const closed = new Promise<number>((resolve) => ws.on("close", resolve));
  await new Promise<void>((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("error", reject);
  });
  const next = async (match: (m: Msg) => boolean) => {
    for (const end = Date.now() + 30_000; ; await sleep(5)) {
      const found = messages.find(match);
      if (found) return found;
      assert.ok(Date.now() < end, `no matching WebSocket message; got ${JSON.stringify(messages.slice(-3))}`);
    }
  };
  return { ws, messages, closed, next, send: (m: object) => ws.send(JSON.stringify(m)) };
}

/** A streamed POST read as it comes: SSE `data:` events or NDJSON lines (`[DONE]` kept as a string). */
function openStream(url: string, body: object) {
  const events: any[] = [];
  let started!: () => void;
  const first = new Promise<void>((resolve) => (started = resolve));
  const all = (async () => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, url);
    const sse = res.headers.get("content-type")!.startsWith("text/event-stream");
    let buffered = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const parts = buffered.split(sse ? "\n\n" : "\n");
      buffered = parts.pop()!;
      for (const part of parts) {
        const data = sse ? part.replace(/^data: /, "") : part;
        events.push(data === "[DONE]" ? data : JSON.parse(data));
      }
      if (events.length > 0) started();
    }
    return events;
  })();
  // An early failure shows in `first` too, rather than as a wait for a token that never comes.
  void all.catch(() => started());
  return { events, first, all };
}

/** The JSON log lines with this message. */
const logged = (served: ServedCli, msg: string): Msg[] =>
  served.log().split("\n").flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Msg;
      return entry.msg === msg ? [entry] : [];
    } catch {
      return [];
    }
  });

async function waitForLog(served: ServedCli, msg: string): Promise<Msg> {
  for (const end = Date.now() + 10_000; ; await sleep(5)) {
    const [entry] = logged(served, msg);
    if (entry) return entry;
    assert.ok(Date.now() < end, `no '${msg}' in the log:\n${served.log()}`);
  }
}

const json = async (url: string, body?: unknown): Promise<any> => {
  const res = await fetch(url, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return res.json();
};

const connectError = (url: string) =>
  fetch(url).then(
    () => "connected",
    (err: { cause?: { code?: string } }) => err.cause?.code ?? "error",
  );

async function fixture(t: { after: (fn: () => Promise<void>) => void }) {
  const { dir, cleanup } = await tempDir("inferno-shutdown-");
  const children: ServedCli[] = [];
  t.after(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
    await cleanup();
  });
  const modelsDir = path.join(dir, "models");
  const dataDir = path.join(dir, "data");
  await mkdir(modelsDir, { recursive: true });
  await writeTinyLlamaGguf(path.join(modelsDir, "tiny.gguf"), { contextLength: 65536 });
  const args = ["--models-dir", modelsDir, "--data-dir", dataDir, "--threads", "1", "--parallel", "8", "--context-size", "65536"];
  const serve = async (env: Record<string, string> = {}) => {
    const served = await serveCli(args, { INFERNO_MAX_TOKENS_LIMIT: "60000", INFERNO_BATCH_CONCURRENCY: "1", ...env });
    children.push(served);
    return served;
  };
  return { dataDir, serve };
}

test("SIGTERM on an idle server exits 0 at once; idle keep-alive and WebSocket connections do not hold it", { timeout: 60_000 }, async (t) => {
  const { serve } = await fixture(t);
  const served = await serve(); // the default grace, 25 s
  assert.equal((await fetch(`${served.url}/health`)).status, 200, "leaves an idle keep-alive connection");
  const ws = await openWs(served.url);
  const started = performance.now();
  served.child.kill("SIGTERM");
  assert.equal(await ws.closed, 1001, "an idle WebSocket is closed as going away");
  assert.equal((await served.exit).code, 0);
  const ms = performance.now() - started;
  assert.ok(ms < 3000, `exited in ${Math.round(ms)} ms`);
  t.diagnostic(`exited ${Math.round(ms)} ms after SIGTERM`);
  assert.equal((await waitForLog(served, "shut down")).ended_by_grace, 0);
});

test("SIGTERM drain: streams finish within the grace or end with SERVICE_UNAVAILABLE; an interrupted batch runs once after a restart", { timeout: 120_000 }, async (t) => {
  const { dataDir, serve } = await fixture(t);
  const GRACE_MS = 6000;
  const first = await serve({ INFERNO_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  const { url } = first;
  const model = "tiny";
  const greedy = { temperature: 0 };

  // A batch whose second item is running at the SIGTERM (each item is 6,000 tokens, several seconds).
  const ids = ["a", "b", "c"];
  const sub = await json(`${url}/batch`, { model, max_tokens: 6000, ...greedy, requests: ids.map((id) => ({ id, prompt: `the ${id}` })) });
  const batchId = sub.batch_id as string;
  for (const end = Date.now() + 30_000; ; await sleep(20)) {
    const s = await json(`${url}/batch/${batchId}`);
    if (s.completed >= 1) break;
    assert.ok(Date.now() < end, "the first batch item completes");
  }

  // Long streams (60,000 tokens: they outlive the grace), one per dialect.
  const LONG = 60_000;
  const native = openStream(`${url}/inference/stream`, { model, prompt: "once upon", max_tokens: LONG, ...greedy });
  const openai = openStream(`${url}/v1/chat/completions`, { model, messages: [{ role: "user", content: "hello" }], max_tokens: LONG, stream: true, ...greedy });
  const ollama = openStream(`${url}/api/generate`, { model, prompt: "the", options: { num_predict: LONG, ...greedy } });
  const ws = await openWs(url);
  ws.send({ type: "inference", id: "ws-long", model, prompt: "hello world", max_tokens: LONG, ...greedy });
  await Promise.all([native.first, openai.first, ollama.first, ws.next((m) => m.id === "ws-long" && m.type === "token")]);

  // A short stream, sized from the decode rate under this load to end about 1/4 s after it starts, so
  // that it is still open at the signal. It has run 2-3 times slower than that measure (one more sequence
  // in every batch, the drain's own work), and several times slower on a busy CI machine: the grace
  // leaves it some 24 times its nominal length.
  const before = native.events.length;
  await sleep(1000);
  const perSecond = native.events.length - before;
  const shortTokens = Math.min(1500, Math.max(20, Math.round(perSecond / 4)));
  const short = openStream(`${url}/v1/chat/completions`, { model, messages: [{ role: "user", content: "hi" }], max_tokens: shortTokens, stream: true, ...greedy });
  await short.first;

  const signalled = performance.now();
  first.child.kill("SIGTERM");
  const draining = await waitForLog(first, "draining: new connections refused, open requests may finish");
  assert.equal(draining.open_requests, 5, "four long streams and the short one were open");
  assert.equal(await connectError(`${url}/health`), "ECONNREFUSED", "a new connection during the drain is refused");
  ws.send({ type: "inference", id: "ws-late", model, prompt: "hi", max_tokens: 5 });
  const late = await ws.next((m) => m.id === "ws-late");
  assert.deepEqual({ type: late.type, code: late.code }, { type: "error", code: "SERVICE_UNAVAILABLE" }, "no new inference on an open socket");

  // The short stream ends normally, within the grace.
  const shortEvents = await short.all;
  assert.equal(shortEvents.at(-1), "[DONE]");
  assert.equal(shortEvents.at(-2).choices[0].finish_reason, "length");
  assert.ok(shortEvents.every((e) => e === "[DONE]" || e.error === undefined));
  const shortMs = performance.now() - signalled;
  assert.ok(shortMs < GRACE_MS, `the short stream ended ${Math.round(shortMs)} ms after the signal`);
  t.diagnostic(`short stream: ${shortTokens} tokens, ended ${Math.round(shortMs)} ms after SIGTERM (grace ${GRACE_MS} ms)`);

  // The long ones end with their dialect's error event once the grace is over.
  const nativeLast = (await native.all).at(-1);
  assert.deepEqual({ done: nativeLast.done, finish_reason: nativeLast.finish_reason, code: nativeLast.error.code }, { done: true, finish_reason: "error", code: "SERVICE_UNAVAILABLE" });
  assert.ok(performance.now() - signalled >= GRACE_MS - 200, "the long streams had the whole grace");
  const openaiLast = (await openai.all).at(-1);
  assert.deepEqual({ type: openaiLast.error.type, code: openaiLast.error.code }, { type: "server_error", code: "service_unavailable" });
  assert.deepEqual((await ollama.all).at(-1), { error: "the server is shutting down" });
  const wsEnd = await ws.next((m) => m.id === "ws-long" && m.type !== "token");
  assert.deepEqual({ type: wsEnd.type, code: wsEnd.code }, { type: "error", code: "SERVICE_UNAVAILABLE" });
  assert.equal(await ws.closed, 1001);

  const exit = await first.exit;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(logged(first, "grace period over: ending the open requests with SERVICE_UNAVAILABLE")[0]?.open_requests, 4);
  assert.deepEqual(
    (({ open_at_start, ended_by_grace }) => ({ open_at_start, ended_by_grace }))((await waitForLog(first, "shut down")) as Msg),
    { open_at_start: 5, ended_by_grace: 4 },
  );

  // The batch state was flushed: nothing left running, no item claimed during the drain.
  const items = (() => {
    const db = new Database(path.join(dataDir, "inferno.db"), { readonly: true });
    try {
      const rows = db.prepare<[string], { item_id: string; status: string; attempts: number }>("SELECT item_id, status, attempts FROM batch_items WHERE batch_id = ?").all(batchId);
      return new Map(rows.map((r) => [r.item_id, r]));
    } finally {
      db.close();
    }
  })();
  assert.deepEqual(items.get("a"), { item_id: "a", status: "done", attempts: 1 });
  const bAtStop = items.get("b")!;
  assert.equal(bAtStop.attempts, 1);
  assert.ok(bAtStop.status === "pending" || bAtStop.status === "done", `b was returned to pending or finished (${bAtStop.status})`);
  assert.deepEqual(items.get("c"), { item_id: "c", status: "pending", attempts: 0 }, "no new item was claimed during the drain");
  t.diagnostic(`at the stop, item b was ${bAtStop.status}`);

  // A restart on the same data dir finishes the batch; every item has exactly one result.
  const second = await serve();
  let status: any;
  for (const end = Date.now() + 60_000; ; await sleep(50)) {
    status = await json(`${second.url}/batch/${batchId}`);
    if (status.status !== "running" && status.status !== "queued") break;
    assert.ok(Date.now() < end, "the batch finishes after the restart");
  }
  assert.deepEqual({ status: status.status, completed: status.completed, failed: status.failed }, { status: "completed", completed: 3, failed: 0 });
  const results = (await json(`${second.url}/batch/${batchId}/results`)).results as any[];
  assert.deepEqual(results.map((r) => [r.id, r.status]), ids.map((id) => [id, "completed"]));
  assert.ok(results.every((r) => r.result.usage.completion_tokens === 6000), "whole answers, never a partial one");
  assert.doesNotMatch(second.log(), /interrupted by a restart/, "the graceful stop left nothing running");
  second.child.kill("SIGTERM");
  assert.equal((await second.exit).code, 0);
  const db = new Database(path.join(dataDir, "inferno.db"), { readonly: true });
  const attempts = Object.fromEntries(db.prepare<[string], { item_id: string; attempts: number }>("SELECT item_id, attempts FROM batch_items WHERE batch_id = ?").all(batchId).map((r) => [r.item_id, r.attempts]));
  db.close();
  assert.deepEqual(attempts, { a: 1, b: bAtStop.status === "done" ? 1 : 2, c: 1 });
});
