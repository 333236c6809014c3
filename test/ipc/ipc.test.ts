// The IPC transport through its real socket: the TypeScript client (inferno/client) and raw frames for
// the protocol's edge cases, on generated fixtures and the real stories260K and mnist models.
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { decode, encode } from "@msgpack/msgpack";
import { connect, InfernoIpcError, type InfernoClient } from "../../src/client/index.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierForward, linearClassifierOnnx, linearClassifierWeights, rawPairOnnx } from "../fixtures/onnx-writer.js";
import { realModel, tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
let srv: TestServer;
let socketPath: string;
let client: InfernoClient;
let tmp: { dir: string; cleanup: () => Promise<void> };
const W = linearClassifierWeights();

before(async () => {
  tmp = await tempDir("inferno-ipc-");
  socketPath = path.join(tmp.dir, "inferno.sock");
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "pair.onnx": rawPairOnnx(), "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    models: stories.skip ? {} : { stories: stories.path },
    config: { ipcSocket: socketPath, ipcMaxFrameBytes: 1 << 20, ipcMaxInFlight: 8, parallel: 2, contextSize: 8192, maxTokensLimit: 8000 },
  });
  client = await connect(socketPath);
});
after(async () => {
  client.close();
  await srv.cleanup();
  await tmp.cleanup();
});

/** A raw protocol connection: frames written byte for byte, frames read back decoded. */
class RawConnection {
  readonly socket: Socket;
  private buffer = Buffer.alloc(0);
  private readonly frames: any[] = [];
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(socketPath: string) {
    this.socket = netConnect(socketPath);
    this.socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 4 && this.buffer.length >= 4 + this.buffer.readUInt32BE(0)) {
        const n = this.buffer.readUInt32BE(0);
        this.frames.push(decode(this.buffer.subarray(4, 4 + n)));
        this.buffer = this.buffer.subarray(4 + n);
      }
      this.waiter?.();
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
    this.socket.on("error", () => {});
  }

  static frame(message: unknown): Buffer {
    const body = Buffer.from(encode(message));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    return Buffer.concat([head, body]);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async next(timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) throw new Error("closed without a frame");
      if (Date.now() > deadline) throw new Error("no frame in time");
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.frames.shift();
  }

  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await sleep(10);
    return this.closed;
  }

  end(): void {
    this.socket.destroy();
  }
}

test("the socket is created with mode 0600 and answers health and models", async () => {
  assert.equal((await stat(socketPath)).mode & 0o777, 0o600);
  const health = await client.health();
  assert.equal(health.status, "healthy");
  assert.equal(health.protocol, 1);
  const { models } = await client.models();
  assert.deepEqual(models.map((m) => m.id).sort(), ["lin", "pair", "tiny", ...(stories.skip ? [] : ["stories"])].sort());
});

test("infer: raw float32 bytes in and out, values right", async () => {
  const x = new Float32Array([0.5, -1, 2, 0.25, 1, 1, 1, 1]);
  const r = await client.infer("lin", { x: { datatype: "FP32", shape: [2, 4], data: x } });
  const out = r.outputs.probs!;
  assert.equal(out.datatype, "FP32");
  assert.deepEqual(out.shape, [2, 3]);
  const probs = new Float32Array(new Uint8Array(out.data as Uint8Array).buffer);
  const want = linearClassifierForward(W, [0.5, -1, 2, 0.25]);
  want.forEach((w, j) => assert.ok(Math.abs(probs[j]! - w) < 1e-5));
  await assert.rejects(client.infer("lin", { x: { datatype: "FP32", shape: [1, 4], data: new Uint8Array(15) } }), (e: InfernoIpcError) => {
    assert.equal(e.code, "INVALID_REQUEST");
    assert.match(e.message, /expected 16 raw bytes/);
    return true;
  });
  await assert.rejects(client.infer("nope", {}), (e: InfernoIpcError) => e.code === "MODEL_NOT_FOUND");
});

test("infer: large frames back to back, split across chunks, tensors at every byte offset: values as sent", async () => {
  // A large frame that arrives in several chunks is joined into a buffer of its own, where a misaligned tensor is
  // moved into place instead of copied; the next frame's bytes, in the same chunks, must stay intact.
  const n = 20_000;
  const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1000);
  const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 7) * 10);
  const c = Float64Array.from({ length: 3 }, (_, i) => i / 3);
  const tensor = (datatype: string, data: Float32Array | Float64Array) => ({ datatype, shape: [data.length], data: new Uint8Array(data.buffer) });
  const conn = new RawConnection(socketPath);
  const frames = Array.from({ length: 8 }, (_, k) =>
    RawConnection.frame({ pad: "x".repeat(k), id: 100 + k, op: "infer", model: "pair", inputs: { a: tensor("FP32", a), b: tensor("FP32", b), c: tensor("FP64", c) } }),
  );
  conn.write(Buffer.concat(frames));
  const values = (out: { data: Uint8Array }, Type: Float32ArrayConstructor | Float64ArrayConstructor) => new Type(Uint8Array.from(out.data).buffer);
  for (let k = 0; k < 8; k++) {
    const frame = await conn.next();
    assert.equal(frame.error, undefined, JSON.stringify(frame.error));
    const { outputs } = frame.result;
    assert.deepEqual(values(outputs.a_out, Float32Array), a, `a, frame ${frame.id}`);
    assert.deepEqual(values(outputs.c_out, Float64Array), c, `c, frame ${frame.id}`);
    values(outputs.sum, Float32Array).forEach((v, i) => assert.equal(v, Math.fround(a[i]! + b[i]!), `sum[${i}], frame ${frame.id}`));
  }
  conn.end();
});

test("metrics count IPC requests by op and code under transport=\"ipc\"", async () => {
  await client.infer("lin", { x: { datatype: "FP32", shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } });
  await assert.rejects(client.infer("lin", { x: { datatype: "FP32", shape: [1, 5], data: new Float32Array(5) } }));
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(text, /inferno_inference_requests_total\{model="lin",route="infer",status="OK",transport="ipc"\} \d+/);
  assert.match(text, /inferno_inference_requests_total\{model="lin",route="infer",status="INVALID_REQUEST",transport="ipc"\} \d+/);
});

test("generate: whole and streamed give the REST text; many streams interleave on one connection", { skip: stories.skip }, async () => {
  const settings = { prompt: "Once upon a time", max_tokens: 30, temperature: 0 };
  const rest = await postJson(`${srv.url}/inference`, { model: "stories", ...settings });
  const whole = await client.generate("stories", settings);
  assert.equal(whole.text, rest.body.choices[0].text);
  assert.equal(whole.usage.completion_tokens, rest.body.usage.completion_tokens);
  const streams = await Promise.all([0, 1, 2, 3].map(async () => {
    const s = client.generate("stories", { ...settings, stream: true });
    let text = "";
    let pieces = 0;
    for await (const piece of s) {
      text += piece;
      pieces++;
    }
    return { text, pieces, result: await s.result };
  }));
  for (const s of streams) {
    assert.equal(s.text, whole.text);
    assert.ok(s.pieces > 1);
    assert.equal(s.result.finish_reason, whole.finish_reason);
  }
  const chat = await client.generate("stories", { messages: [{ role: "user", content: "Hi" }], max_tokens: 5, temperature: 0 });
  assert.equal(typeof chat.text, "string");
});

test("cancel: an AbortSignal stops a stream at once, with usage so far, and frees the sequence", async () => {
  const controller = new AbortController();
  const s = client.generate("tiny", { prompt: "x", max_tokens: 6000, ignore_eos: true, stream: true, signal: controller.signal });
  let pieces = 0;
  for await (const _ of s) {
    if (++pieces === 5) controller.abort();
  }
  const r = await s.result;
  assert.equal(r.finish_reason, "cancelled");
  assert.ok(r.usage.completion_tokens < 6000);
  const model = srv.app.registry.getLoaded("tiny") as LlamaTextModel;
  for (let i = 0; i < 40 && model.inFlight > 0; i++) await sleep(5);
  assert.equal(model.inFlight, 0);
});

test("a client that disconnects mid-stream stops its generation and frees the sequence", async () => {
  const raw = new RawConnection(socketPath);
  raw.write(RawConnection.frame({ id: 1, op: "generate", model: "tiny", prompt: "x", max_tokens: 6000, ignore_eos: true, stream: true }));
  const first = await raw.next();
  assert.equal(first.event, "token");
  raw.end();
  const model = srv.app.registry.getLoaded("tiny") as LlamaTextModel;
  for (let i = 0; i < 40 && model.inFlight > 0; i++) await sleep(5);
  assert.equal(model.inFlight, 0, "the sequence is free again");
});

test("framing: split and coalesced frames, interleaved answers, zero-length, oversize, not a map, missing id, unknown op, duplicate id", async () => {
  // Two requests in one write, the second split across two writes.
  const a = RawConnection.frame({ id: 1, op: "health" });
  const b = RawConnection.frame({ id: 2, op: "models" });
  let c = new RawConnection(socketPath);
  c.write(Buffer.concat([a, b.subarray(0, 3)]));
  await sleep(20);
  c.write(b.subarray(3));
  const got = [await c.next(), await c.next()].sort((x, y) => x.id - y.id);
  assert.equal(got[0].result.status, "healthy");
  assert.ok(Array.isArray(got[1].result.models));
  // Unknown op: an error for that id; the connection stays open.
  c.write(RawConnection.frame({ id: 3, op: "fly" }));
  const unknown = await c.next();
  assert.deepEqual([unknown.id, unknown.error.code], [3, "INVALID_REQUEST"]);
  c.write(RawConnection.frame({ id: 4, op: "health" }));
  assert.equal((await c.next()).id, 4);
  c.end();
  const fatal: Array<[string, Buffer, string]> = [
    ["zero-length frame", Buffer.alloc(4), "INVALID_REQUEST"],
    ["oversize frame", Buffer.from([0x7f, 0xff, 0xff, 0xff]), "PAYLOAD_TOO_LARGE"],
    ["not a map", RawConnection.frame([1, 2, 3]), "INVALID_REQUEST"],
    ["missing id", RawConnection.frame({ op: "health" }), "INVALID_REQUEST"],
    ["negative id", RawConnection.frame({ id: -1, op: "health" }), "INVALID_REQUEST"],
    ["not MessagePack", Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from([0xc1])]), "INVALID_REQUEST"],
    ["array of 4 billion", Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])]), "INVALID_REQUEST"],
  ];
  for (const [what, bytes, code] of fatal) {
    c = new RawConnection(socketPath);
    c.write(bytes);
    const frame = await c.next();
    assert.equal(frame.id, null, what);
    assert.equal(frame.error.code, code, what);
    assert.ok(await c.closedWithin(2000), `${what}: the connection is closed`);
  }
  // A duplicate id while the first is still running is a protocol error too.
  c = new RawConnection(socketPath);
  c.write(RawConnection.frame({ id: 7, op: "generate", model: "tiny", prompt: "x", max_tokens: 6000, ignore_eos: true, stream: true }));
  assert.equal((await c.next()).event, "token");
  c.write(RawConnection.frame({ id: 7, op: "health" }));
  let frame;
  do frame = await c.next(); while (frame.event === "token");
  assert.match(frame.error.message, /id 7 is already in flight/);
  assert.ok(await c.closedWithin(2000));
  // And the server goes on.
  assert.equal((await client.health()).status, "healthy");
});

test("backpressure: more requests than ipcMaxInFlight wait for a slot instead of failing", async () => {
  const started = await Promise.all(Array.from({ length: 20 }, () => client.infer("lin", { x: { datatype: "FP32", shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } })));
  assert.equal(started.length, 20);
});

test("a stale socket file is replaced at start; a live server on the path is a start-up error", async () => {
  const { spawn } = await import("node:child_process");
  const stale = path.join(tmp.dir, "stale.sock");
  // A socket file nobody listens on, as a crashed server leaves it: a listener killed with SIGKILL.
  const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(stale)}, () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
  child.kill("SIGKILL");
  await new Promise<void>((resolve) => child.once("exit", () => resolve()));
  assert.ok((await stat(stale)).isSocket());
  const second = await startTestServer({ files: { "lin.onnx": linearClassifierOnnx() }, config: { ipcSocket: stale } });
  try {
    const c2 = await connect(stale);
    assert.equal((await c2.health()).status, "healthy");
    c2.close();
    // The same path again while that server lives.
    await assert.rejects(startTestServer({ config: { ipcSocket: stale } }), /another server is listening on/);
  } finally {
    await second.cleanup();
  }
});

test("at ipcMaxInFlight, further requests wait their turn, a cancel still gets through, and a time limit is an error, not a short success", async () => {
  const sock = path.join(tmp.dir, "one.sock");
  const one = await startTestServer({
    files: { "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    config: { ipcSocket: sock, ipcMaxInFlight: 1, parallel: 4, contextSize: 8192, maxTokensLimit: 8000, requestTimeoutMs: 1000 },
  });
  await one.app.registry.load("tiny"); // the 1 s limit is for generation, not the first load
  const c = new RawConnection(sock);
  try {
    const long = { op: "generate", model: "tiny", prompt: "x", max_tokens: 6000, ignore_eos: true, stream: true };
    // Two requests in one write: one runs, one waits (the model could run four at once).
    c.write(Buffer.concat([1, 2].map((id) => RawConnection.frame({ ...long, id }))));
    const first = await c.next();
    assert.deepEqual([first.id, first.event], [1, "token"]);
    const model = one.app.registry.getLoaded("tiny") as LlamaTextModel;
    assert.equal(model.inFlight, 1, "one request runs at a time");
    // Cancel the running one and the waiting one.
    c.write(Buffer.concat([RawConnection.frame({ id: 10, op: "cancel", target: 1 }), RawConnection.frame({ id: 11, op: "cancel", target: 2 })]));
    const seen = new Map<number, any>();
    while (!seen.has(10) || !seen.has(11) || !seen.has(2) || seen.get(1)?.event !== "done") {
      const f = await c.next();
      if (f.event !== "token") seen.set(f.id, f);
    }
    assert.equal(seen.get(1).finish_reason, "cancelled");
    assert.deepEqual(seen.get(10).result, { target: 1, cancelled: true });
    assert.deepEqual(seen.get(11).result, { target: 2, cancelled: true });
    assert.equal(seen.get(2).error.code, "CANCELLED");
    // The 1 s time limit ends a generation with TIMEOUT, not a successful "done".
    c.write(RawConnection.frame({ ...long, id: 3 }));
    let end;
    do end = await c.next(); while (end.event === "token");
    assert.equal(end.id, 3);
    assert.equal(end.error?.code, "TIMEOUT", JSON.stringify(end));
    // Six in one write still run one at a time.
    c.write(Buffer.concat([20, 21, 22, 23, 24, 25].map((id) => RawConnection.frame({ ...long, max_tokens: 50, id }))));
    assert.equal((await c.next()).id, 20);
    assert.equal(model.inFlight, 1);
  } finally {
    c.end();
    await one.cleanup();
  }
});
