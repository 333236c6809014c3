// streamEvents (src/http/sse.ts) through a real Fastify server and raw sockets: after the first event, events are
// written straight onto the socket as HTTP/1.1 chunks, so the chunk framing, the backpressure on a reader that
// stops reading and the HTTP/1.0 path (no chunked encoding) are checked byte for byte here.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify, { type FastifyInstance } from "fastify";
import { sendSse } from "../../src/http/sse.js";

let app: FastifyInstance;
let port: number;
/** Events the last /big stream had taken from its source, read while its client is not reading. */
let pulled = 0;

const BIG_EVENTS = 200;
const BIG_TEXT = "é".repeat(32 * 1024); // 64 KiB of UTF-8 in each event: framing counts bytes, not characters

before(async () => {
  app = Fastify();
  app.get("/small", async (request, reply) => {
    async function* events() {
      for (let i = 0; i < 5; i++) yield { index: i, token: `tök ${i}` };
      yield { done: true };
    }
    await sendSse(request, reply, events(), (err) => ({ error: err.code }));
  });
  app.get("/big", async (request, reply) => {
    pulled = 0;
    async function* events() {
      for (let i = 0; i < BIG_EVENTS; i++) {
        pulled++;
        yield { index: i, text: BIG_TEXT };
      }
    }
    await sendSse(request, reply, events(), (err) => ({ error: err.code }));
  });
  app.get("/fails", async (request, reply) => {
    async function* events(): AsyncGenerator<object> {
      yield { index: 0 };
      yield { index: 1 };
      throw new Error("generation broke");
    }
    await sendSse(request, reply, events(), (err) => ({ error: err.code }));
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  port = (app.server.address() as net.AddressInfo).port;
});
after(() => app.close());

/** Sends a raw GET and collects the whole response (until the server ends the body or closes). */
function get(path: string, version: "1.0" | "1.1", { pauseMs = 0 } = {}): Promise<{ head: string; body: Buffer; pulledWhilePaused: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let pulledWhilePaused = -1;
    socket.on("error", reject);
    socket.on("data", (c) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      // HTTP/1.1 keeps the connection: the body ends with the last chunk.
      if (version === "1.1" && all.includes("\r\n0\r\n\r\n")) socket.end();
    });
    socket.on("close", () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf("\r\n\r\n");
      resolve({ head: all.subarray(0, split).toString("latin1"), body: all.subarray(split + 4), pulledWhilePaused });
    });
    socket.write(`GET ${path} HTTP/${version}\r\nhost: localhost\r\n${version === "1.1" ? "connection: keep-alive\r\n" : ""}\r\n`);
    if (pauseMs > 0) {
      socket.pause();
      void sleep(pauseMs).then(() => {
        pulledWhilePaused = pulled;
        socket.resume();
      });
    }
  });
}

/** Parses a chunked body strictly: every size line's count of bytes, then CRLF, until the zero chunk. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    assert.ok(eol > at, `a chunk size line at byte ${at}`);
    const size = Number.parseInt(body.subarray(at, eol).toString("latin1"), 16);
    assert.ok(Number.isInteger(size), `chunk size at byte ${at}`);
    const start = eol + 2;
    assert.equal(body.subarray(start + size, start + size + 2).toString("latin1"), "\r\n", `CRLF after the ${size}-byte chunk at ${start}`);
    if (size === 0) {
      assert.equal(start + 2, body.length, "nothing after the last chunk");
      return Buffer.concat(parts);
    }
    parts.push(body.subarray(start, start + size));
    at = start + size + 2;
  }
}

const events = (text: string) =>
  text
    .split("\n\n")
    .filter((e) => e.length > 0)
    .map((e) => {
      assert.ok(e.startsWith("data: "), e);
      return JSON.parse(e.slice(6)) as Record<string, unknown>;
    });

test("HTTP/1.1: every event is a well-formed chunk, multi-byte text counted in bytes", async () => {
  const res = await get("/small", "1.1");
  assert.match(res.head, /^HTTP\/1\.1 200/);
  assert.match(res.head, /transfer-encoding: chunked/i);
  assert.match(res.head, /content-type: text\/event-stream/i);
  assert.match(res.head, /x-accel-buffering: no/i, "nginx passes the stream on as it comes, whatever its proxy_buffering");
  assert.deepEqual(events(dechunk(res.body).toString("utf8")), [
    ...[0, 1, 2, 3, 4].map((i) => ({ index: i, token: `tök ${i}` })),
    { done: true },
  ]);
});

test("HTTP/1.0: no chunked encoding, the events as they are, the connection closed at the end", async () => {
  const res = await get("/small", "1.0");
  assert.match(res.head, /^HTTP\/1\.1 200/);
  assert.doesNotMatch(res.head, /transfer-encoding/i);
  assert.equal(events(res.body.toString("utf8")).length, 6);
});

test("a client that stops reading holds the stream back, and gets every byte when it reads again", async () => {
  const res = await get("/big", "1.1", { pauseMs: 500 });
  // 200 events of 64 KiB (12.5 MiB) do not fit the socket buffers: the stream waited for them to drain.
  assert.ok(res.pulledWhilePaused > 0 && res.pulledWhilePaused < BIG_EVENTS, `events taken while the client did not read: ${res.pulledWhilePaused}`);
  const got = events(dechunk(res.body).toString("utf8"));
  assert.equal(got.length, BIG_EVENTS);
  got.forEach((e, i) => {
    assert.equal(e.index, i);
    assert.equal(e.text, BIG_TEXT);
  });
});

test("an error after some events ends the stream with an error event, still well-formed", async () => {
  const res = await get("/fails", "1.1");
  assert.deepEqual(events(dechunk(res.body).toString("utf8")), [{ index: 0 }, { index: 1 }, { error: "INTERNAL_ERROR" }]);
});
