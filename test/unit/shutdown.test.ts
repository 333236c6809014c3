// The drain (src/lifecycle/shutdown.ts) on a bare Fastify app with a real listening socket and no model:
// stand-in routes stream or wait until their request's signal aborts, as generations do.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it, type TestContext } from "node:test";
import Fastify from "fastify";
import { errorBody, registerErrorHandling } from "../../src/errors/error-handler.js";
import { abortOnDisconnect, sendSse } from "../../src/http/sse.js";
import { shutdownPlugin } from "../../src/lifecycle/shutdown.js";
import { requestTimeoutPlugin } from "../../src/limits/request-timeout.js";

async function build(t: TestContext) {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  registerErrorHandling(app);
  await app.register(requestTimeoutPlugin, { timeoutMs: 60_000 });
  await app.register(shutdownPlugin);
  const seen = { requests: 0 };
  app.addHook("onRequest", async () => void seen.requests++);
  // `n` tokens 10 ms apart, or until the signal aborts (the writer then ends with the abort's error).
  app.post<{ Body: { n: number } }>("/inference/stream", async (request, reply) => {
    const { signal } = abortOnDisconnect(reply);
    async function* tokens() {
      for (let i = 0; i < request.body.n && !signal.aborted; i++) {
        yield { token: "x", index: i };
        await sleep(10);
      }
      yield { done: true, finish_reason: "length" };
    }
    await sendSse(request, reply, tokens(), (err) => ({ done: true, finish_reason: "error", ...errorBody(err, "native", request.id) }));
  });
  // A non-streamed generation: answers with what it has when its signal aborts.
  app.post("/inference", async (_request, reply) => {
    const { signal } = abortOnDisconnect(reply);
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    return { text: "partial" };
  });
  app.get<{ Querystring: { ms: string } }>("/slow", async (request) => {
    await sleep(Number(request.query.ms));
    return { ok: true };
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  t.after(() => app.close());
  return { app, port, url: `http://127.0.0.1:${port}`, seen };
}

/** A stream's events as they come; `first` resolves with the first one, `all` with every one once it ends. */
function openSse(url: string, n: number) {
  const events: any[] = [];
  let gotFirst!: () => void;
  const first = new Promise<void>((resolve) => (gotFirst = resolve));
  const all = (async () => {
    const res = await fetch(`${url}/inference/stream`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n }) });
    let buffered = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const blocks = buffered.split("\n\n");
      buffered = blocks.pop()!;
      for (const b of blocks) events.push(JSON.parse(b.replace(/^data: /, "")));
      if (events.length > 0) gotFirst();
    }
    return events;
  })();
  return { first, all };
}

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });

describe("drain", () => {
  it("closes an idle app at once, without waiting for the grace", async (t) => {
    const { app, url } = await build(t);
    assert.equal((await fetch(`${url}/slow?ms=0`)).status, 200, "leaves an idle keep-alive connection behind");
    const started = performance.now();
    assert.deepEqual(await app.drain(10_000), { openAtStart: 0, endedByGrace: 0 });
    assert.ok(performance.now() - started < 1000);
    assert.equal(app.server.listening, false);
  });

  it("lets open requests finish within the grace, then ends the rest with SERVICE_UNAVAILABLE", async (t) => {
    const { app, port, url, seen } = await build(t);
    const short = openSse(url, 20); // about 200 ms
    const long = openSse(url, 1e9);
    const slow = fetch(`${url}/slow?ms=150`);
    const stuck = fetch(`${url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    await Promise.all([short.first, long.first]);
    while (seen.requests < 4) await sleep(5);
    const started = performance.now();
    const drained = app.drain(800);

    assert.equal(await refused(port), "ECONNREFUSED", "no new connection during the drain");
    // A request that still reaches the app (on a connection already open) is refused in the envelope.
    const late = await app.inject({ method: "GET", url: "/slow?ms=0" });
    assert.equal(late.statusCode, 503);
    assert.equal(late.json().error.code, "SERVICE_UNAVAILABLE");
    assert.equal(late.json().error.details.reason, "shutting_down");
    assert.equal(late.headers["retry-after"], "1");
    assert.equal(late.headers.connection, "close");

    const slowRes = await slow;
    assert.equal(slowRes.status, 200, "an answer within the grace is sent as usual");
    assert.equal(slowRes.headers.get("connection"), "close");
    assert.deepEqual((await short.all).at(-1), { done: true, finish_reason: "length" });

    const longEvents = await long.all;
    assert.equal(longEvents.at(-1).finish_reason, "error");
    assert.equal(longEvents.at(-1).error.code, "SERVICE_UNAVAILABLE");
    const stuckRes = await stuck;
    assert.equal(stuckRes.status, 503);
    assert.equal(((await stuckRes.json()) as any).error.code, "SERVICE_UNAVAILABLE");

    assert.deepEqual(await drained, { openAtStart: 4, endedByGrace: 2 });
    assert.ok(performance.now() - started >= 750, "the long ones had the whole grace");
  });

  it("ends the grace early when called again with 0 (a second signal)", async (t) => {
    const { app, url } = await build(t);
    const long = openSse(url, 1e9);
    await long.first;
    const started = performance.now();
    const drained = app.drain(60_000);
    await sleep(100);
    assert.equal(app.drain(0), drained, "the same drain");
    assert.deepEqual(await drained, { openAtStart: 1, endedByGrace: 1 });
    assert.ok(performance.now() - started < 5000);
    assert.equal((await long.all).at(-1).error.code, "SERVICE_UNAVAILABLE");
  });
});
