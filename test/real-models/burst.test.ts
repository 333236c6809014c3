// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI.
// Issue #12: 300 streaming clients at once on one model got 232 immediate 503s from a 64-deep queue. Here
// 600 arrive at once on real sockets; the queue takes what it holds, the rest get a clean 503, and the
// server ends with nothing in flight.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { GenerationStream } from "../../src/core/generation.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { realModel } from "../helpers/paths.js";
import { holdSequence, postJson, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const CLIENTS = 600;
const PARALLEL = 4;
const QUEUE = 400;

let srv: TestServer;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories: stories.path }, config: { contextSize: 2048, parallel: PARALLEL, queueSize: QUEUE } });
});
after(() => srv?.cleanup());

interface Answer {
  status: number | string;
  retryAfter?: string | undefined;
  code?: string;
  tokens: number;
  done?: { finish_reason: string; usage: { completion_tokens: number } };
}

/** One streaming request on its own connection (no keep-alive: 600 clients are 600 sockets). */
function stream(agent: http.Agent): Promise<Answer> {
  const body = JSON.stringify({ model: "stories", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  return new Promise((resolve) => {
    const req = http.request(
      `${srv.url}/inference/stream`,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("error", (err) => resolve({ status: `response error: ${err.message}`, tokens: 0 }));
        res.on("end", () => {
          if (res.statusCode !== 200) {
            const code = (JSON.parse(text) as { error: { code: string } }).error.code;
            return resolve({ status: res.statusCode!, retryAfter: res.headers["retry-after"], code, tokens: 0 });
          }
          const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => JSON.parse(e.slice(6)) as Record<string, any>);
          resolve({ status: 200, tokens: events.filter((e) => "token" in e).length, done: events.find((e) => e.done === true) as Answer["done"] });
        });
      },
    );
    req.on("error", (err) => resolve({ status: `request error: ${err.message}`, tokens: 0 }));
    req.end(body);
  });
}

async function inFlight(): Promise<number> {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("inferno_requests_in_flight "));
  return Number(line?.split(" ")[1]);
}

test(`${CLIENTS} concurrent streams: the ${QUEUE} the queue holds succeed, the rest get 503 with Retry-After, nothing else`, { skip: stories.skip, timeout: 90_000 }, async () => {
  assert.equal((await postJson(`${srv.url}/models/stories/load`, {})).status, 200);
  const model = srv.app.registry.getLoaded("stories") as LlamaTextModel;
  // Every sequence held until the whole burst has arrived, so exactly the queue's worth waits whatever
  // this machine's speed; on a fast one the first streams would otherwise finish while the rest connect.
  const holders: GenerationStream[] = [];
  for (let i = 0; i < PARALLEL; i++) holders.push(await holdSequence(srv.app, "stories"));
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const started = performance.now();
  let refused = 0;
  const answers = Array.from({ length: CLIENTS }, () => stream(agent).then((a) => (a.status === 503 && refused++, a)));
  while (model.queued + refused < CLIENTS && performance.now() - started < 60_000) await sleep(20);
  assert.equal(model.queued, QUEUE, "the queue is full");
  assert.equal(refused, CLIENTS - QUEUE, "every request beyond it was refused at once");
  for (const h of holders) await h.return(undefined as never);
  const all = await Promise.all(answers);
  agent.destroy();

  const byStatus = new Map<string, number>();
  for (const a of all) byStatus.set(String(a.status), (byStatus.get(String(a.status)) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(byStatus), { 200: QUEUE, 503: CLIENTS - QUEUE });
  for (const a of all) {
    if (a.status === 200) {
      assert.ok(a.done && a.done.usage.completion_tokens > 0, "a served stream ends with its done event");
      assert.ok(a.tokens > 0);
    } else {
      assert.equal(a.code, "SERVICE_UNAVAILABLE");
      assert.equal(a.retryAfter, "1");
    }
  }
  // The gauge drops when each response has closed, which may trail the client's end event by a tick.
  let gauge = await inFlight();
  for (let i = 0; i < 100 && gauge !== 0; i++) {
    await sleep(20);
    gauge = await inFlight();
  }
  assert.equal(gauge, 0, "inferno_requests_in_flight returns to 0");
  assert.equal(model.queued, 0);
  assert.equal(model.inFlight, 0);
  // And the model still serves.
  assert.equal((await postJson(`${srv.url}/inference`, { model: "stories", prompt: "Once", max_tokens: 4 })).status, 200);
});
