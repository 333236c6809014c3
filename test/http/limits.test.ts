// Rate limits and request limits on the real server. Needs no external model: tiny llama GGUFs are
// generated at test time ("tiny", and "long" with an 8192-token context for generations that run for seconds).
// Windows are a minute or an hour here, so this file checks counting, headers and refusals; window
// resets under a fake clock are in test/unit/rate-limit.test.ts. Auth is off, so every request is
// counted by its IP (127.0.0.1); per-key counting is tested on a bare app in the unit test.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig, type ConfigInput } from "../../src/config/config.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, readSse, startTestServer, waitIdle, type TestServer } from "../helpers/server.js";

const LONG = 8000;
let longFile: string;
let cleanupFixture: () => Promise<void>;
const servers: TestServer[] = [];

before(async () => {
  const tmp = await tempDir();
  cleanupFixture = tmp.cleanup;
  longFile = path.join(tmp.dir, "long.gguf");
  await writeTinyLlamaGguf(longFile, { contextLength: 8192 });
});
after(async () => {
  for (const s of servers) await s.cleanup();
  await cleanupFixture();
});

async function server(config: Partial<ConfigInput>, long = false): Promise<TestServer> {
  const s = await startTestServer(
    long
      ? { models: { long: longFile }, config: { contextSize: 8192, parallel: 1, maxTokensLimit: LONG, ...config } }
      : { tinyModels: ["tiny"], config },
  );
  servers.push(s);
  return s;
}

async function get(url: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const short = { model: "tiny", prompt: "hello", max_tokens: 16, temperature: 0 };

describe("requests per minute", () => {
  let srv: TestServer;
  before(async () => {
    srv = await server({ rateLimit: true, requestsPerMinute: 3 });
  });

  it("counts down in the headers, then refuses with 429 in each dialect's envelope", async () => {
    for (const remaining of ["2", "1", "0"]) {
      const before = Math.floor(Date.now() / 1000);
      const res = await get(`${srv.url}/models`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-ratelimit-limit"), "3");
      assert.equal(res.headers.get("x-ratelimit-remaining"), remaining);
      const resetAfter = Number(res.headers.get("x-ratelimit-reset-after"));
      const reset = Number(res.headers.get("x-ratelimit-reset"));
      assert.ok(resetAfter > 0 && resetAfter <= 60, `reset-after ${resetAfter}`);
      assert.ok(reset >= before + resetAfter && reset <= before + resetAfter + 2, `reset ${reset} is an epoch second`);
    }
    const native = await get(`${srv.url}/models`);
    assert.equal(native.status, 429);
    const retryAfter = Number(native.headers.get("retry-after"));
    assert.ok(retryAfter > 0 && retryAfter <= 60);
    assert.equal(native.headers.get("x-ratelimit-remaining"), "0");
    assert.ok(native.headers.get("x-ratelimit-reset-after"));
    assert.equal(native.body.error.code, "RATE_LIMIT_EXCEEDED");
    assert.equal(native.body.error.details.retry_after, retryAfter);
    assert.equal(native.body.error.details.limit, "requests_per_minute");
    assert.match(native.body.request_id, /^req_/);

    const openai = await postJson(`${srv.url}/v1/chat/completions`, { model: "tiny", messages: [{ role: "user", content: "hi" }] });
    assert.equal(openai.status, 429);
    assert.ok(openai.headers.get("retry-after"));
    assert.equal(openai.body.error.type, "rate_limit_error");
    assert.equal(openai.body.error.code, "rate_limit_exceeded");

    const ollama = await get(`${srv.url}/api/tags`);
    assert.equal(ollama.status, 429);
    assert.match(ollama.body.error, /^Rate limit exceeded/);

    // Read from the app (GET /metrics is itself rate limited, and this client is over its limit).
    if (srv.app.hasDecorator("metrics")) {
      assert.match(await srv.app.metrics.registry.metrics(), /inferno_rate_limited_total\{limit="requests_per_minute"\} 3/);
    }
  });

  it("never counts nor refuses health checks", async () => {
    for (const url of ["/health", "/v2/health/live", "/v2/health/ready"]) {
      const res = await get(`${srv.url}${url}`);
      assert.equal(res.status, 200, url);
      assert.equal(res.headers.get("x-ratelimit-limit"), null, url);
    }
  });
});

describe("tokens per minute", () => {
  for (const streamed of [false, true]) {
    it(`a ${streamed ? "streamed chat" : "whole"} generation over the budget refuses the next request`, async () => {
      const srv = await server({ rateLimit: true, tokensPerMinute: 10 });
      let used: number;
      if (streamed) {
        const res = await fetch(`${srv.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 16, stream: true, stream_options: { include_usage: true } }),
        });
        assert.equal(res.status, 200);
        const events = await readSse(res);
        used = events.at(-2).usage.total_tokens;
      } else {
        const res = await postJson(`${srv.url}/inference`, short);
        assert.equal(res.status, 200);
        used = res.body.usage.total_tokens;
      }
      assert.ok(used >= 10, `the generation used ${used} tokens, more than the budget`);
      const refused = await postJson(`${srv.url}/inference`, short);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, "RATE_LIMIT_EXCEEDED");
      assert.equal(refused.body.error.details.limit, "tokens_per_minute");
      assert.ok(refused.body.error.details.retry_after > 0 && refused.body.error.details.retry_after <= 60);
    });
  }
});

describe("concurrent requests", () => {
  it("refuses a second request while a stream is open, and serves the next once it has ended", async () => {
    const srv = await server({ rateLimit: true, concurrentRequests: 1 }, true);
    const stream = (maxTokens: number, signal?: AbortSignal) =>
      fetch(`${srv.url}/inference/stream`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "long", prompt: "hello", max_tokens: maxTokens, temperature: 0 }),
        ...(signal ? { signal } : {}),
      });
    const leaving = new AbortController();
    const open = await stream(LONG, leaving.signal);
    await open.body!.getReader().read(); // generation is running
    const refused = await postJson(`${srv.url}/inference`, { model: "long", prompt: "hi", max_tokens: 2 });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal(refused.body.error.details.limit, "concurrent_requests");
    leaving.abort();
    const model = srv.app.registry.getLoaded("long") as LlamaTextModel;
    await waitIdle(model, 3000);
    assert.equal((await postJson(`${srv.url}/inference`, { model: "long", prompt: "hi", max_tokens: 2 })).status, 200, "a client that left frees its slot");

    const events = await readSse(await stream(4));
    assert.equal(events.at(-1).done, true);
    assert.equal((await postJson(`${srv.url}/inference`, { model: "long", prompt: "hi", max_tokens: 2 })).status, 200, "a stream that ended frees its slot");
  });
});

describe("request timeout", () => {
  let srv: TestServer;
  let model: LlamaTextModel;
  const body = { model: "long", prompt: "hello", max_tokens: LONG, temperature: 0 };
  before(async () => {
    srv = await server({ requestTimeoutMs: 1000 }, true);
    // Loaded outside a request: a first load (the file check included) may itself take longer than the limit.
    model = (await srv.app.registry.load("long")) as LlamaTextModel;
  });

  it("answers a non-streamed generation still running after the limit with 504 TIMEOUT and stops it", async () => {
    const generated = model.generatedTokens;
    const started = performance.now();
    const res = await postJson(`${srv.url}/inference`, body);
    assert.equal(res.status, 504);
    assert.equal(res.body.error.code, "TIMEOUT");
    assert.ok(performance.now() - started < 3000, "answered at the limit, not when generation would have ended");
    await waitIdle(model, 3000);
    assert.equal(model.inFlight, 0);
    assert.ok(model.generatedTokens - generated < LONG, "generation stopped early");

    const openai = await postJson(`${srv.url}/v1/completions`, { ...body, prompt: "hi" });
    assert.equal(openai.status, 504);
    assert.equal(openai.body.error.type, "server_error");
    assert.equal(openai.body.error.code, "timeout");
    await waitIdle(model, 3000);
  });

  it("ends a stream still running after the limit with the dialect's error event", async () => {
    const res = await fetch(`${srv.url}/inference/stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    const events = await readSse(res);
    const last = events.at(-1);
    assert.equal(last.finish_reason, "error");
    assert.equal(last.error.code, "TIMEOUT");
    assert.ok(events.slice(0, -1).every((e) => e.done !== true), "no done event before the error");
    await waitIdle(model, 3000);
    assert.equal(model.inFlight, 0);
    const next = await postJson(`${srv.url}/inference`, { model: "long", prompt: "hi", max_tokens: 2 });
    assert.equal(next.status, 200, "the sequence is free again");
  });
});

describe("request size limits, rate limiting off", () => {
  let srv: TestServer;
  before(async () => {
    srv = await server({ bodyLimit: 2048, maxHeaderBytes: 4096 });
  });

  it("adds no rate-limit header when rate limiting is off", async () => {
    const res = await postJson(`${srv.url}/inference`, short);
    assert.equal(res.status, 200);
    for (const name of ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-reset-after"]) {
      assert.equal(res.headers.get(name), null, name);
    }
  });

  it("refuses a body over bodyLimit with 413 PAYLOAD_TOO_LARGE", async () => {
    const big = { ...short, prompt: "x".repeat(4096) };
    const native = await postJson(`${srv.url}/inference`, big);
    assert.equal(native.status, 413);
    assert.equal(native.body.error.code, "PAYLOAD_TOO_LARGE");
    const openai = await postJson(`${srv.url}/v1/completions`, big);
    assert.equal(openai.status, 413);
    assert.equal(openai.body.error.code, "payload_too_large");
  });

  it("refuses a header block over maxHeaderBytes with 431 and keeps serving", async () => {
    const { port } = new URL(srv.url);
    const { status, body } = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: "/health", headers: { "x-padding": "a".repeat(8192) } }, (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, body: text }));
      });
      req.on("error", reject);
    });
    assert.equal(status, 431);
    assert.equal(JSON.parse(body).error.code, "HEADERS_TOO_LARGE");
    assert.equal((await get(`${srv.url}/health`)).status, 200);
  });

  it("answers what Node's parser or Fastify's router refuses in the coded envelope", async () => {
    const { port } = new URL(srv.url);
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), "127.0.0.1", () => socket.write(request));
        let text = "";
        socket.on("data", (c) => (text += c));
        socket.on("end", () => resolve(text));
        socket.on("error", reject);
      });
    for (const request of [
      "get /health HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /inference HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
    ]) {
      const answer = await raw(request);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.equal(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).error.code, "INVALID_REQUEST");
    }
    const badUrl = await get(`${srv.url}/models/%zz`);
    assert.equal(badUrl.status, 400);
    assert.equal(badUrl.body.error.details.reason, "FST_ERR_BAD_URL");
    const openai = await get(`${srv.url}/v1/models/${"a".repeat(300)}`);
    assert.equal(openai.status, 400);
    assert.equal(openai.body.error.code, "invalid_request");
  });
});

describe("behind a proxy (trustProxy)", () => {
  const from = async (srv: TestServer, forwardedFor: string) => {
    const res = await fetch(`${srv.url}/models`, { headers: { "x-forwarded-for": forwardedFor } });
    await res.arrayBuffer();
    return res.status;
  };

  it("counts each client named by X-Forwarded-For when the proxy is trusted", async () => {
    const srv = await server({ rateLimit: true, requestsPerMinute: 2, trustProxy: "127.0.0.1,::1" });
    assert.deepEqual([await from(srv, "203.0.113.5"), await from(srv, "203.0.113.5"), await from(srv, "203.0.113.5")], [200, 200, 429]);
    // Another client behind the same proxy has its own window; a spoofed hop before the proxy's entry does not help.
    assert.equal(await from(srv, "203.0.113.6"), 200);
    assert.equal(await from(srv, "198.51.100.9, 203.0.113.5"), 429);
  });

  it("ignores X-Forwarded-For by default: a client cannot pick its own rate-limit key", async () => {
    const srv = await server({ rateLimit: true, requestsPerMinute: 2 });
    assert.deepEqual([await from(srv, "203.0.113.5"), await from(srv, "203.0.113.6"), await from(srv, "203.0.113.7")], [200, 200, 429]);
  });

  it("refuses a malformed setting at start with the key's name", async () => {
    assert.throws(() => loadConfig({ env: { INFERNO_TRUST_PROXY: "10.0.0.0/8,not-an-ip" }, flags: {} }), /trustProxy/);
    assert.deepEqual(loadConfig({ env: { INFERNO_TRUST_PROXY: "2" }, flags: {} }).trustProxy, 2);
    // "1" is one hop (the nearest proxy), not "trust everyone"; "0" and the words are booleans.
    assert.equal(loadConfig({ env: { INFERNO_TRUST_PROXY: "1" }, flags: {} }).trustProxy, 1);
    assert.equal(loadConfig({ env: { INFERNO_TRUST_PROXY: "0" }, flags: {} }).trustProxy, false);
    assert.equal(loadConfig({ env: { INFERNO_TRUST_PROXY: "true" }, flags: {} }).trustProxy, true);
  });
});
