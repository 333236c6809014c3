// Needs no external model: tiny llama GGUFs (one with a long context) are generated at test time.
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import type { Principal } from "../../src/auth/principal.js";
import { UserStore } from "../../src/auth/users.js";
import { websocketRoutes, websocketSupport, type WebsocketSettings } from "../../src/transports/api/websocket.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { openDatabase } from "../../src/store/database.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import { Conn } from "../helpers/ws-client.js";

let open: TestServer; // auth off; the tiny model and a long-context one
let secured: TestServer; // auth on
let userKey: string;
let cleanupFixture: () => Promise<void>;
const extraApps: FastifyInstance[] = [];
const LONG = 8000;
const wsUrl = (srv: TestServer) => `${srv.url.replace(/^http/, "ws")}/ws`;
const greedy = { max_tokens: 24, temperature: 0 };
const longRun = (id: string) => ({ type: "inference", id, model: "long", prompt: "hello", max_tokens: LONG, temperature: 0 });
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const ALICE: Principal = { user: "alice", role: "user", via: "api-key" };

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(10);
  }
}

/** `/ws` alone with short timings, on its own listener, serving the open server's models. */
async function tuned(settings: Partial<WebsocketSettings>, authEnabled = false): Promise<string> {
  const app = Fastify();
  extraApps.push(app);
  const checkers = { verifyApiKey: (key: string) => (key === "inf_good" ? ALICE : undefined), verifyJwt: () => undefined };
  await app.register(websocketSupport);
  await app.register(websocketRoutes, {
    registry: open.app.registry,
    limits: { defaultMaxTokens: 16, maxTokensLimit: LONG },
    auth: { enabled: authEnabled, checkers },
    settings,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  return `ws://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/ws`;
}

const newKey = (srv: TestServer, user: string) => new ApiKeyStore(openDatabase(srv.dataDir)).create({ user, name: "ws", role: "user" }).key;
const longModel = () => open.app.registry.getLoaded("long") as LlamaTextModel;

before(async () => {
  const tmp = await tempDir();
  cleanupFixture = tmp.cleanup;
  const file = path.join(tmp.dir, "long.gguf");
  await writeTinyLlamaGguf(file, { contextLength: 8192 });
  open = await startTestServer({ tinyModels: ["tiny"], models: { long: file }, config: { contextSize: 8192, parallel: 16, maxTokensLimit: LONG } });
  secured = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  userKey = newKey(secured, "alice");
  await postJson(`${open.url}/models/long/load`, {});
});
after(async () => {
  for (const app of extraApps) await app.close();
  await open.cleanup();
  await secured.cleanup();
  await cleanupFixture();
});

test("the API reference's example: auth then inference at once; tokens, then complete with POST /inference's text", async () => {
  const ws = await Conn.open(wsUrl(secured));
  ws.send({ type: "auth", token: userKey });
  ws.send({ type: "inference", id: "req_1", model: "tiny", prompt: "Once upon a time", ...greedy, stream: true });
  assert.deepEqual(await ws.next(), { type: "auth", ok: true, user: "alice", role: "user" });
  const { tokens, end } = await ws.result("req_1");
  assert.equal(end.type, "complete");
  assert.deepEqual(tokens.map((t) => t.index), tokens.map((_, i) => i));
  const http = await postJson(`${secured.url}/inference`, { model: "tiny", prompt: "Once upon a time", ...greedy }, bearer(userKey));
  assert.equal(http.status, 200);
  assert.equal(end.text, http.body.choices[0].text);
  assert.equal(tokens.map((t) => t.token).join(""), end.text);
  assert.equal(end.finish_reason, http.body.choices[0].finish_reason);
  assert.deepEqual(end.usage, http.body.usage);
  ws.ws.close();
});

test("several inferences on one socket interleave and each completes with its own text", async () => {
  const ws = await Conn.open(wsUrl(open));
  ws.send({ type: "auth", token: "ignored with auth off" });
  assert.deepEqual(await ws.next(), { type: "auth", ok: true, user: "anonymous", role: "admin" });
  const prompts = { a: "hello", b: "once upon a time", c: "the world is" };
  for (const [id, prompt] of Object.entries(prompts)) ws.send({ type: "inference", id, model: "tiny", prompt, max_tokens: 40, temperature: 0 });
  // Without streaming, an inference answers with its `complete` only.
  ws.send({ type: "inference", id: "whole", model: "tiny", prompt: "hello", max_tokens: 40, temperature: 0, stream: false });
  const results = await Promise.all(Object.keys(prompts).map((id) => ws.result(id)));
  const firstEnd = ws.all.findIndex((m) => m.type === "complete");
  assert.ok(new Set(ws.all.slice(0, firstEnd).map((m) => m.id)).size > 1, "tokens of different ids interleave");
  for (const [i, [id, prompt]] of Object.entries(prompts).entries()) {
    const http = await postJson(`${open.url}/inference`, { model: "tiny", prompt, max_tokens: 40, temperature: 0 });
    assert.equal(results[i]!.end.type, "complete", id);
    assert.equal(results[i]!.end.text, http.body.choices[0].text, `text of ${id}`);
  }
  const whole = await ws.result("whole");
  assert.deepEqual([whole.tokens.length, whole.end.text], [0, results[0]!.end.text]);
  ws.ws.close();
});

test("cancel stops one inference and frees its sequence while the others go on", async () => {
  const model = longModel();
  const ws = await Conn.open(wsUrl(open));
  ws.send(longRun("a"));
  ws.send(longRun("b"));
  await ws.next((m) => m.id === "a" && m.type === "token");
  await ws.next((m) => m.id === "b" && m.type === "token");
  assert.equal(model.inFlight, 2);
  ws.send({ type: "cancel", id: "a" });
  const { tokens, end } = await ws.result("a");
  assert.equal(end.finish_reason, "cancelled");
  assert.equal(end.text, tokens.map((t) => t.token).join(""), "text is what was sent before the cancel");
  assert.ok(end.usage.completion_tokens < LONG);
  await until(() => model.inFlight === 1, "a's sequence is free");
  const seen = ws.tokensOf("b");
  await until(() => ws.tokensOf("b") > seen + 20, "b goes on");
  ws.send({ type: "cancel", id: "b" });
  assert.equal((await ws.result("b")).end.finish_reason, "cancelled");
  await until(() => model.inFlight === 0, "every sequence is free");
  ws.ws.close();
});

test("cancelling an inference that waits for a sequence takes it out of the queue", async () => {
  const model = longModel();
  const busy = await Conn.open(wsUrl(open));
  for (let i = 0; i < 16; i++) busy.send(longRun(`busy${i}`));
  await until(() => model.inFlight === 16 && busy.tokensOf("busy15") > 0, "every sequence is busy");
  const ws = await Conn.open(wsUrl(open));
  ws.send(longRun("waiting"));
  await until(() => model.queued === 1, "the inference is queued");
  ws.send({ type: "cancel", id: "waiting" });
  assert.deepEqual((await ws.result("waiting")).end, { type: "complete", id: "waiting", finish_reason: "cancelled", text: "" });
  assert.equal(model.queued, 0);
  busy.ws.close();
  ws.ws.close();
  await until(() => model.inFlight === 0, "the sequences are free");
});

test("tokens generated over the socket count against the key's tokens-per-minute limit", async () => {
  const limited = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: true, tokensPerMinute: 10 } });
  try {
    const key = newKey(limited, "bob");
    const ws = await Conn.open(wsUrl(limited), bearer(key));
    ws.send({ type: "inference", id: "t", model: "tiny", prompt: "hello", ...greedy });
    assert.equal((await ws.result("t")).end.type, "complete");
    ws.ws.close();
    const next = await postJson(`${limited.url}/inference`, { model: "tiny", prompt: "hi", max_tokens: 2 }, bearer(key));
    assert.deepEqual([next.status, next.body.error.details.limit], [429, "tokens_per_minute"]);
  } finally {
    await limited.cleanup();
  }
});

test("closing the socket mid-generation stops all of its inferences", async () => {
  const model = longModel();
  const ws = await Conn.open(wsUrl(open));
  for (const id of ["x", "y", "z"]) ws.send(longRun(id));
  for (const id of ["x", "y", "z"]) await ws.next((m) => m.id === id && m.type === "token");
  const before = model.generatedTokens;
  ws.ws.close();
  await until(() => model.inFlight === 0, "the sequences are free");
  assert.ok(model.generatedTokens - before < 3 * LONG);
});

test("protocol errors are answered with coded errors and the socket stays usable", async () => {
  const ws = await Conn.open(wsUrl(open));
  const error = () => ws.next((m) => m.type === "error");
  ws.send("{not json");
  assert.equal((await error()).details.reason, "invalid_json");
  ws.send("[1, 2]");
  assert.equal((await error()).details.reason, "not_an_object");
  ws.send({ type: "dance", id: "d1" });
  assert.deepEqual(await error(), { type: "error", id: "d1", code: "INVALID_REQUEST", message: 'unknown message type "dance"; expected one of auth, inference, cancel, ping', details: { reason: "unknown_type" } });
  ws.send({ type: "cancel", id: "nobody" });
  assert.deepEqual([(await error()).code, ws.all.at(-1)!.id], ["NOT_FOUND", "nobody"]);
  ws.send({ type: "inference", id: "m1" });
  const invalid = await error();
  assert.equal(invalid.code, "INVALID_REQUEST");
  assert.equal(invalid.id, "m1");
  assert.match(invalid.message, /invalid inference message: (model|prompt)/);
  ws.send({ type: "inference", id: "m2", model: "tiny", prompt: "x", max_tokens: LONG + 1 });
  assert.match((await error()).message, /max_tokens 8001 is above/);
  ws.send({ type: "inference", id: "m3", model: "ghost", prompt: "x" });
  assert.deepEqual([(await error()).code, ws.all.at(-1)!.id], ["MODEL_NOT_FOUND", "m3"]);
  ws.send(longRun("dup"));
  ws.send(longRun("dup"));
  const dup = await error();
  assert.deepEqual([dup.id, dup.details.reason], ["dup", "duplicate_id"]);
  ws.send({ type: "cancel", id: "dup" });
  assert.equal((await ws.result("dup")).end.finish_reason, "cancelled");
  ws.send(JSON.stringify({ type: "ping", pad: "x".repeat(1_500_000) }));
  assert.equal((await error()).code, "PAYLOAD_TOO_LARGE");
  ws.send({ type: "ping" });
  assert.deepEqual(await ws.next((m) => m.type !== "token"), { type: "pong" });
  ws.send({ type: "inference", id: "ok", model: "tiny", prompt: "hello", ...greedy });
  assert.equal((await ws.result("ok")).end.type, "complete");
  // A frame beyond the hard cap never reaches the handler: the ws library closes with 1009.
  ws.send(Buffer.alloc(5 << 20, 32));
  assert.equal(await ws.closed, 1009);
});

test("with auth on nothing but auth is accepted first, and a bad token closes the socket with 4401", async () => {
  const ws = await Conn.open(wsUrl(secured));
  ws.send({ type: "inference", id: "early", model: "tiny", prompt: "hi" });
  const early = await ws.next();
  assert.deepEqual([early.type, early.id, early.code, early.details.reason], ["error", "early", "AUTHENTICATION_FAILED", "missing_credentials"]);
  ws.send({ type: "ping" });
  assert.equal((await ws.next()).code, "AUTHENTICATION_FAILED");
  ws.send({ type: "auth", token: "inf_not_a_key" });
  const refused = await ws.next();
  assert.deepEqual([refused.code, refused.details.reason], ["AUTHENTICATION_FAILED", "invalid_credentials"]);
  assert.equal(await ws.closed, 4401);
});

test("an Authorization header on the upgrade authenticates the socket; JWTs work; a plain GET /ws is refused", async () => {
  const ws = await Conn.open(wsUrl(secured), bearer(userKey));
  ws.send({ type: "inference", id: "h", model: "tiny", prompt: "hello", ...greedy });
  assert.equal((await ws.result("h")).end.type, "complete");
  ws.ws.close();
  const badHeader = await Conn.open(wsUrl(secured), bearer("inf_wrong"));
  assert.equal((await badHeader.next()).details.reason, "invalid_credentials");
  assert.equal(await badHeader.closed, 4401);
  await new UserStore(openDatabase(secured.dataDir)).create("carol", "correct horse battery", "user");
  const login = await postJson(`${secured.url}/auth/login`, { username: "carol", password: "correct horse battery" });
  const withJwt = await Conn.open(wsUrl(secured));
  withJwt.send({ type: "auth", token: login.body.token });
  assert.deepEqual(await withJwt.next(), { type: "auth", ok: true, user: "carol", role: "user" });
  withJwt.ws.close();
  const plain = await fetch(`${secured.url}/ws`);
  assert.equal(plain.status, 401);
  assert.equal(plain.headers.get("www-authenticate"), 'Bearer realm="inferno"');
  assert.equal((await fetch(`${secured.url}/ws`, bearer(userKey))).status, 400);
});

test("a socket that does not authenticate in time is closed with 4401", async () => {
  const url = await tuned({ authTimeoutMs: 200 }, true);
  const started = Date.now();
  const ws = await Conn.open(url);
  assert.equal(await ws.closed, 4401);
  assert.ok(Date.now() - started < 5000);
  assert.equal(ws.all[0]?.details.reason, "auth_timeout");
  const authed = await Conn.open(url);
  authed.send({ type: "auth", token: "inf_good" });
  assert.equal((await authed.next()).user, "alice");
  await sleep(400);
  assert.equal(authed.ws.readyState, 1, "an authenticated socket stays");
  authed.ws.close();
});

test("idle sockets are pinged, and one that does not answer is dropped", async () => {
  const url = await tuned({ pingIntervalMs: 100 });
  const deaf = await Conn.open(url, { autoPong: false });
  const healthy = await Conn.open(url);
  assert.equal(await deaf.closed, 1006, "terminated without a closing handshake");
  await sleep(300);
  assert.equal(healthy.ws.readyState, 1, "a socket that answers pings stays");
  healthy.ws.close();
});

test("a socket may have a limited number of inferences in flight", async () => {
  const ws = await Conn.open(await tuned({ maxInFlight: 2 }));
  for (const id of ["p", "q", "r"]) ws.send(longRun(id));
  const refused = await ws.next((m) => m.type === "error");
  assert.deepEqual([refused.id, refused.code, refused.details.limit], ["r", "RATE_LIMIT_EXCEEDED", "socket_in_flight"]);
  ws.ws.close();
  await until(() => longModel().inFlight === 0, "the sequences are free");
});

// A paused client fills the kernel's socket buffers (a few MB on loopback) before the server's own send
// buffer grows, so these use 16 streams with long ids to get there in seconds.
const fillStreams = (ws: Conn) => {
  for (let i = 0; i < 16; i++) ws.send(longRun(String(i).padStart(256, "#")));
};

async function plateau(model: LlamaTextModel): Promise<number> {
  let last = -1;
  let still = 0;
  const deadline = Date.now() + 60_000;
  while (still < 5) {
    assert.ok(Date.now() < deadline, "generation never paused");
    await sleep(200);
    still = model.generatedTokens === last ? still + 1 : 0;
    last = model.generatedTokens;
  }
  return last;
}

test("a client that stops reading pauses its generations instead of being buffered for; reading again resumes them", async () => {
  const model = longModel();
  const ws = await Conn.open(wsUrl(open));
  fillStreams(ws);
  await ws.next((m) => m.type === "token");
  ws.ws._socket.pause();
  const stalledAt = await plateau(model);
  assert.equal(model.inFlight, 16, "paused, not finished");
  assert.ok(stalledAt < 16 * LONG);
  const [server] = [...open.app.websocketServer.clients] as Array<{ bufferedAmount: number }>;
  const buffered = server!.bufferedAmount;
  assert.ok(buffered > 256 << 10 && buffered <= (1 << 20) + 16 * 400, `paused on a full buffer, bounded (${buffered} bytes)`);
  ws.ws._socket.resume();
  await until(() => model.generatedTokens > stalledAt + 500, "generation resumes");
  assert.equal(ws.all.filter((m) => m.type !== "token").length, 0, "nothing failed");
  ws.ws.close();
  await until(() => model.inFlight === 0, "the sequences are free");
});

test("a client that stays stuck past the stall limit is dropped and its sequences freed", async () => {
  const model = longModel();
  const ws = await Conn.open(await tuned({ highWaterBytes: 64 << 10, lowWaterBytes: 16 << 10, stallLimitMs: 300 }));
  fillStreams(ws);
  await ws.next((m) => m.type === "token");
  const before = model.generatedTokens;
  ws.ws._socket.pause();
  await until(() => model.inFlight === 0, "the stuck client's inferences stop", 60_000);
  assert.ok(model.generatedTokens - before < 16 * LONG);
  ws.ws._socket.resume();
  // Its last messages (SLOW_CONSUMER, close 1008) sit behind what it never read; the TCP connection is cut.
  assert.ok([1006, 1008].includes(await ws.closed));
});
