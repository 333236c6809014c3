// API-Version: on every HTTP answer (routes of every family, errors, 404s, router and parser refusals,
// SSE streams, the WebSocket upgrade, console and docs files) and the coded refusal of another major in
// each dialect's envelope. Needs the real stories260K.gguf (demo/models, in the repository) for the stream.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { API_VERSION } from "../../src/core/api-version.js";
import { repoRoot } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { WebSocket } from "../helpers/ws-client.js";

const STORIES = path.join(repoRoot, "demo/models/stories260K.gguf");
let srv: TestServer;

before(async () => {
  srv = await startTestServer({ models: { stories: STORIES }, config: { corsOrigins: ["https://app.example"] } });
});
after(() => srv.cleanup());

test("the constant is 1.0, as the API reference promises", () => {
  assert.equal(API_VERSION, "1.0");
});

test("every kind of answer carries API-Version: routes, errors, 404s, console and docs files, a CORS preflight", async () => {
  const requests: Array<{ method: "GET" | "POST" | "OPTIONS"; url: string; payload?: unknown; headers?: Record<string, string>; status: number }> = [
    { method: "GET", url: "/health", status: 200 },
    { method: "GET", url: "/models", status: 200 },
    { method: "GET", url: "/v1/models", status: 200 },
    { method: "GET", url: "/api/tags", status: 200 },
    { method: "GET", url: "/v2/health/ready", status: 200 },
    { method: "GET", url: "/audit", status: 200 },
    { method: "GET", url: "/", status: 200 },
    { method: "GET", url: "/openapi.json", status: 200 },
    { method: "GET", url: "/docs/json", status: 200 },
    { method: "GET", url: "/console/app.js", status: 200 },
    { method: "GET", url: "/no/such/route", status: 404 },
    { method: "GET", url: "/v1/no-such", status: 404 },
    { method: "POST", url: "/inference", payload: { model: "stories" }, status: 400 },
    { method: "POST", url: "/v1/chat/completions", payload: { model: "nope", messages: [{ role: "user", content: "x" }] }, status: 404 },
    { method: "GET", url: "/models/%zz", status: 400 },
    { method: "OPTIONS", url: "/v1/models", headers: { origin: "https://app.example", "access-control-request-method": "GET" }, status: 204 },
  ];
  for (const r of requests) {
    const res = await srv.app.inject({ method: r.method, url: r.url, headers: r.headers ?? {}, ...(r.payload ? { payload: r.payload as object } : {}) });
    assert.equal(res.statusCode, r.status, `${r.method} ${r.url}: ${res.body.slice(0, 200)}`);
    assert.equal(res.headers["api-version"], "1.0", `${r.method} ${r.url}`);
  }
});

test("an SSE stream through a real socket carries API-Version", async () => {
  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "stories", prompt: "Once upon", max_tokens: 4 }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  assert.equal(res.headers.get("api-version"), "1.0");
  assert.match(await res.text(), /data: /);
});

test("the WebSocket upgrade's 101 carries API-Version; an upgrade asking for 2.0 is refused", async () => {
  const headers = await new Promise<IncomingMessage["headers"]>((resolve, reject) => {
    const ws = new WebSocket(`${srv.url.replace("http", "ws")}/ws`) as unknown as { on(e: string, l: (...a: any[]) => void): void; close(): void };
    ws.on("upgrade", (res: IncomingMessage) => resolve(res.headers));
    ws.on("open", () => ws.close());
    ws.on("error", reject);
  });
  assert.equal(headers["api-version"], "1.0");
  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`${srv.url.replace("http", "ws")}/ws`, { headers: { "api-version": "2.0" } }) as unknown as { on(e: string, l: (...a: any[]) => void): void };
    ws.on("unexpected-response", (req: { destroy(): void }, res: IncomingMessage) => {
      // With this listener ws leaves the refused request open: closed here, or it holds the process.
      req.destroy();
      resolve(res.statusCode ?? 0);
    });
    ws.on("open", () => resolve(101));
    ws.on("error", () => undefined);
  });
  assert.equal(refused, 400);
});

test("a request Node's HTTP parser refuses still gets API-Version in its coded answer", async () => {
  const raw = await new Promise<string>((resolve) => {
    const socket = connect(Number(new URL(srv.url).port), "127.0.0.1", () => socket.write("GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"));
    let text = "";
    socket.on("data", (d) => (text += d.toString()));
    socket.on("close", () => resolve(text));
    socket.on("error", () => resolve(text));
  });
  assert.match(raw, /^HTTP\/1\.1 400/);
  assert.match(raw, /\r\nAPI-Version: 1\.0\r\n/i);
  assert.match(raw, /"code":"INVALID_REQUEST"/);
});

test("API-Version 1, 1.0 or 1.9 is served; none means current", async () => {
  for (const value of ["1", "1.0", "1.9", " 1.0 "]) {
    const res = await srv.app.inject({ method: "GET", url: "/models", headers: { "api-version": value } });
    assert.equal(res.statusCode, 200, value);
  }
});

test("another major or a malformed version is UNSUPPORTED_API_VERSION (400) in the route's own envelope", async () => {
  const bad = ["2.0", "2", "0.9", "v1", "1.0.0", "abc", "", "1.x", "9".repeat(40)];
  for (const value of bad) {
    const res = await srv.app.inject({ method: "GET", url: "/models", headers: { "api-version": value } });
    assert.equal(res.statusCode, 400, `'${value}'`);
    const body = res.json();
    assert.equal(body.error.code, "UNSUPPORTED_API_VERSION", `'${value}'`);
    assert.deepEqual(body.error.details.supported, ["1.0"]);
    assert.equal(res.headers["api-version"], "1.0");
  }
  const openai = await srv.app.inject({ method: "POST", url: "/v1/chat/completions", headers: { "api-version": "2.0" }, payload: {} });
  assert.equal(openai.statusCode, 400);
  assert.equal(openai.json().error.code, "unsupported_api_version");
  assert.equal(openai.json().error.type, "invalid_request_error");
  for (const url of ["/api/tags", "/v2/health/ready"]) {
    const res = await srv.app.inject({ method: "GET", url, headers: { "api-version": "3" } });
    assert.equal(res.statusCode, 400, url);
    assert.deepEqual(Object.keys(res.json()), ["error"], url);
    assert.match(res.json().error, /API version '3' is not served/);
  }
  // Two API-Version headers are one malformed value, not a choice.
  const twice = await fetch(`${srv.url}/models`, { headers: [["api-version", "1.0"], ["api-version", "2.0"]] });
  assert.equal(twice.status, 400);
  assert.equal(((await twice.json()) as any).error.code, "UNSUPPORTED_API_VERSION");
});
