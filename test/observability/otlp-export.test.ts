// Needs ../shared/models (stories260K.gguf, mnist-8.onnx); skipped without it, required in CI.
// The spans a real server exports over OTLP/HTTP (protobuf), received and decoded by a local receiver:
// one trace per request across HTTP (SSE) and IPC, its tree, the GenAI attributes, the caller's
// traceparent continued; and a collector that is down or hangs never stops the server nor its close.
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { decode, encode } from "@msgpack/msgpack";
import { realModel, tempDir } from "../helpers/paths.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const mnist = realModel("mnist-8.onnx");
const skip = stories.skip || mnist.skip;
const SERVER = 2;
const INTERNAL = 1;

let receiver: OtlpReceiver;
let srv: TestServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let socketPath: string;

before(async () => {
  if (skip) return;
  receiver = await startOtlpReceiver();
  tmp = await tempDir("inferno-otlp-");
  socketPath = path.join(tmp.dir, "inferno.sock");
  srv = await startTestServer({
    models: { stories260K: stories.path, mnist: mnist.path },
    config: { otlpEndpoint: receiver.url, otlpServiceName: "inferno-otlp-test", ipcSocket: socketPath, contextSize: 2048 },
  });
});
after(async () => {
  await srv?.cleanup();
  await receiver?.close();
  await tmp?.cleanup();
});

/** One IPC request as raw frames (4-byte length, MessagePack); resolves with its answer frame. */
function ipcRequest(request: Record<string, unknown>): Promise<any> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(socketPath);
    let buffer = Buffer.alloc(0);
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
        const frame = decode(buffer.subarray(4, 4 + buffer.readUInt32BE(0))) as any;
        buffer = buffer.subarray(4 + buffer.readUInt32BE(0));
        if (frame.id === request.id && (frame.result !== undefined || frame.error !== undefined)) {
          socket.end();
          resolve(frame);
        }
      }
    });
    const body = Buffer.from(encode(request));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    socket.write(Buffer.concat([head, body]));
  });
}

/** The spans of a trace, once the receiver holds `names` (export runs every second). */
async function exported(traceId: string, names: string[]): Promise<ReceivedSpan[]> {
  for (let i = 0; ; i++) {
    const spans = receiver.spans.filter((s) => s.traceId === traceId);
    if (names.every((n) => spans.some((s) => s.name === n)) || i === 150) return spans;
    await sleep(100);
  }
}

const one = (spans: ReceivedSpan[], name: string) => {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `one ${name} span in ${spans.map((s) => s.name).join(", ")}`);
  return found[0]!;
};

/** The generation's spans hang under `root` with the GenAI attributes of what was asked and answered. */
function checkGeneration(spans: ReceivedSpan[], root: ReceivedSpan, usage: { prompt_tokens: number; completion_tokens: number }, maxTokens: number) {
  const queue = one(spans, "queue.wait");
  const generation = one(spans, "generation");
  const prefill = one(spans, "prefill");
  const decodeSpan = one(spans, "decode");
  for (const s of [queue, generation]) assert.equal(s.parentSpanId, root.spanId, `${s.name} is a child of the request`);
  for (const s of [prefill, decodeSpan]) assert.equal(s.parentSpanId, generation.spanId, `${s.name} is a child of the generation`);
  for (const s of [queue, generation, prefill, decodeSpan]) {
    assert.equal(s.kind, INTERNAL, s.name);
    assert.ok(s.startMs >= root.startMs - 1 && s.endMs <= root.endMs + 1, `${s.name} lies within the request`);
  }
  assert.equal(queue.attributes["inferno.model"], "stories260K");
  const a = generation.attributes;
  assert.equal(a["gen_ai.operation.name"], "text_completion");
  assert.equal(a["gen_ai.request.model"], "stories260K");
  assert.equal(a["gen_ai.request.max_tokens"], maxTokens);
  assert.equal(a["gen_ai.request.temperature"], 0);
  assert.equal(a["gen_ai.usage.input_tokens"], usage.prompt_tokens);
  assert.equal(a["gen_ai.usage.output_tokens"], usage.completion_tokens);
  assert.deepEqual(a["gen_ai.response.finish_reasons"], ["length"]);
  const ttft = a["gen_ai.response.time_to_first_chunk"] as number;
  assert.ok(ttft > 0 && ttft * 1000 <= generation.endMs - queue.startMs + 1, `time to first token ${ttft} s`);
  // Prompt processing, then decode, back to back inside the generation.
  assert.ok(prefill.startMs >= generation.startMs - 0.01 && prefill.endMs <= decodeSpan.startMs + 0.01);
  assert.ok(decodeSpan.endMs <= generation.endMs + 0.01);
  assert.equal(decodeSpan.attributes["gen_ai.usage.output_tokens"], usage.completion_tokens);
}

test("an SSE generation exports one trace continuing the caller's: request, model load, queue wait, generation (prefill, decode)", { skip }, async () => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const parent = "00f067aa0ba902b7";
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json", traceparent: `00-${trace}-${parent}-01` },
    body: JSON.stringify({ model: "stories260K", prompt: "Once upon a time", max_tokens: 20, temperature: 0 }),
  });
  assert.equal(res.status, 200);
  const echoed = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(res.headers.get("traceparent") ?? "");
  assert.ok(echoed, "the response carries a sampled traceparent");
  assert.equal(echoed[1], trace);
  const done = (await readSse(res)).at(-1);
  assert.deepEqual(done.usage, { prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 });

  const spans = await exported(trace, ["POST /inference/stream", "model.load", "queue.wait", "generation", "prefill", "decode"]);
  const root = one(spans, "POST /inference/stream");
  assert.equal(root.kind, SERVER);
  assert.equal(root.parentSpanId, parent, "the caller's span is the parent");
  assert.equal(root.spanId, echoed[2], "the response names the server span");
  assert.equal(spans.filter((s) => s.kind === SERVER).length, 1, "one server span: one trace per request");
  assert.equal(root.attributes["http.request.method"], "POST");
  assert.equal(root.attributes["http.route"], "/inference/stream");
  assert.equal(root.attributes["http.response.status_code"], 200);
  assert.equal(root.attributes["inferno.transport"], "http");
  assert.notEqual(root.status.code, 2);
  assert.equal(root.resource["service.name"], "inferno-otlp-test");
  const load = one(spans, "model.load");
  assert.equal(load.parentSpanId, root.spanId);
  assert.equal(load.attributes["inferno.model"], "stories260K");
  checkGeneration(spans, root, done.usage, 20);
  assert.ok(receiver.requests.every((r) => r.path === "/v1/traces" && r.contentType === "application/x-protobuf"));
});

test("an IPC generation is one trace under the caller's traceparent, with the same GenAI spans", { skip }, async () => {
  const trace = "0af7651916cd43dd8448eb211c80319c";
  const parent = "b7ad6b7169203331";
  const answer = await ipcRequest({ id: 1, op: "generate", model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0, traceparent: `00-${trace}-${parent}-01` });
  assert.equal(answer.result.usage.completion_tokens, 12);

  const spans = await exported(trace, ["ipc generate", "queue.wait", "generation", "prefill", "decode"]);
  const root = one(spans, "ipc generate");
  assert.equal(root.kind, SERVER);
  assert.equal(root.parentSpanId, parent);
  assert.equal(root.attributes["rpc.system"], "ipc");
  assert.equal(root.attributes["rpc.method"], "generate");
  assert.equal(root.attributes["rpc.status"], "OK");
  assert.equal(root.attributes["inferno.transport"], "ipc");
  assert.equal(root.attributes["inferno.model"], "stories260K");
  assert.equal(spans.filter((s) => s.kind === SERVER).length, 1);
  checkGeneration(spans, root, answer.result.usage, 12);
  assert.equal(answer.traceparent, `00-${trace}-${root.spanId}-01`, "the final frame names the call's own span");
});

test("an ONNX tensor run is a tensor.run span; a coded error sets the span's status; bad traceparents start new traces", { skip }, async () => {
  const image = [Array.from({ length: 28 }, () => new Array<number>(28).fill(0))];
  const r = await postJson(`${srv.url}/models/mnist/inference`, { inputs: { Input3: [image] } });
  assert.equal(r.status, 200);
  const tensorTrace = r.headers.get("traceparent")!.split("-")[1]!;
  const spans = await exported(tensorTrace, ["POST /models/:id/inference", "tensor.run"]);
  const run = one(spans, "tensor.run");
  assert.equal(run.parentSpanId, one(spans, "POST /models/:id/inference").spanId);
  assert.equal(run.attributes["inferno.model"], "mnist");
  assert.equal(run.attributes["inferno.tensor.batch"], 1);

  // A generation refused by the model (an ONNX model cannot generate) over IPC: coded, not a server error.
  const refusedTrace = "5bf92f3577b34da6a3ce929d0e0e4736";
  const refused = await ipcRequest({ id: 2, op: "generate", model: "mnist", prompt: "x", traceparent: `00-${refusedTrace}-00f067aa0ba902b7-01` });
  assert.equal(refused.error.code, "UNSUPPORTED_OPERATION");
  assert.match(refused.traceparent, new RegExp(`^00-${refusedTrace}-[0-9a-f]{16}-01$`), "an error frame carries it too");
  const [call] = await exported(refusedTrace, ["ipc generate"]);
  assert.equal(call?.attributes["error.type"], "UNSUPPORTED_OPERATION");
  assert.notEqual(call?.status.code, 2, "a client's error is not a server error");

  for (const header of ["garbage", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`, `00-${"a".repeat(32)}-${"b".repeat(16)}-01-extra`, "00-xyz"]) {
    const res = await fetch(`${srv.url}/health`, { headers: { traceparent: header } });
    assert.equal(res.status, 200, header);
    const [, traceId] = res.headers.get("traceparent")!.split("-");
    const [span] = await exported(traceId!, ["GET /health"]);
    assert.equal(span?.parentSpanId, "", `${header}: a root span`);
  }
});

test("an unsampled caller (flags 00) is traced in memory but not exported; close flushes what is queued", { skip }, async () => {
  const trace = "6bf92f3577b34da6a3ce929d0e0e4736";
  const res = await fetch(`${srv.url}/health`, { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-00` } });
  assert.match(res.headers.get("traceparent") ?? "", new RegExp(`^00-${trace}-[0-9a-f]{16}-00$`));
  const inMemory = (await (await fetch(`${srv.url}/traces?trace_id=${trace}`)).json()) as { traces: unknown[] };
  assert.equal(inMemory.traces.length, 1);

  // The last request right before close: only the shutdown's flush can export it in time.
  const last = await fetch(`${srv.url}/health`);
  const lastTrace = last.headers.get("traceparent")!.split("-")[1]!;
  await srv.close();
  assert.ok(receiver.spans.some((s) => s.traceId === lastTrace), "close exported the queued span");
  assert.ok(!receiver.spans.some((s) => s.traceId === trace), "the unsampled trace is not exported");
});

test("a collector that refuses or hangs: requests are served, and the server closes in bounded time", { skip }, async () => {
  const hanging = await startOtlpReceiver("hang");
  const refused = await startOtlpReceiver();
  await refused.close(); // its port now refuses connections
  try {
    for (const endpoint of [refused.url, hanging.url]) {
      const server = await startTestServer({ models: { stories260K: stories.path }, config: { otlpEndpoint: endpoint } });
      try {
        for (let i = 0; i < 3; i++) {
          const r = await postJson(`${server.url}/inference`, { model: "stories260K", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
          assert.equal(r.status, 200, endpoint);
          assert.equal(r.body.usage.completion_tokens, 8);
        }
        await sleep(1200); // an export has been tried (and failed or hung) by now
        const again = await postJson(`${server.url}/inference`, { model: "stories260K", prompt: "Once", max_tokens: 4, temperature: 0 });
        assert.equal(again.status, 200);
        const traces = (await (await fetch(`${server.url}/traces?limit=5`)).json()) as { traces: unknown[] };
        assert.equal(traces.traces.length, 5, "the in-memory traces do not depend on the collector");
      } finally {
        const t0 = performance.now();
        await server.cleanup();
        const ms = performance.now() - t0;
        assert.ok(ms < 4500, `closed in ${Math.round(ms)} ms with the collector at ${endpoint}`);
      }
    }
    assert.ok(hanging.requests.length >= 1, "the hanging collector was tried");
  } finally {
    await hanging.close();
  }
});
