// Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let adminKey: string;
let userKey: string;
// The API docs: the document, the page, and the page's assets and copy of the document (src/openapi);
// "/" and "/console/*" are the web console's page and files (test/console/console.test.ts checks what they serve).
const DOCS_PATHS = ["/openapi.json", "/docs", "/docs/", "/docs/json", "/docs/yaml", "/docs/static/*", "/docs/static/index.html", "/docs/static/swagger-initializer.js"];
const PUBLIC_PATHS = ["/health", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/auth/login", "/ws", "/", "/console/*", ...DOCS_PATHS];
const PUBLIC = new Set([
  "GET /health", "GET /health/live", "GET /health/ready", "GET /v2/health/live", "GET /v2/health/ready", "POST /auth/login", "GET /", "GET /console/*",
  ...DOCS_PATHS.map((p) => `GET ${p}`), ...PUBLIC_PATHS.map((p) => `OPTIONS ${p}`),
]);
const b64url = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  // The stores behind the routes, as the CLI uses them (no key can be made over HTTP without one).
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin key", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice key", role: "user" }).key;
});
after(() => srv.cleanup());

test("every route in Fastify's route table refuses a request without credentials unless it is public", async () => {
  assert.ok(srv.app.routeTable.length > 30, "the route table is populated");
  for (const { method, url } of srv.app.routeTable) {
    const path = url.replace(/:(\w+)/g, "x");
    const res = await srv.app.inject({ method: method as "GET", url: path, payload: method === "GET" ? undefined : {} });
    if (PUBLIC.has(`${method} ${url}`)) {
      assert.notEqual(res.statusCode, 401, `${method} ${url} is public`);
    } else {
      assert.equal(res.statusCode, 401, `${method} ${url} without credentials → ${res.statusCode}`);
      assert.equal(res.headers["www-authenticate"], 'Bearer realm="inferno"');
    }
  }
  // Unknown routes too: no probing which exist.
  assert.equal((await srv.app.inject({ method: "GET", url: "/no/such/route" })).statusCode, 401);
});

test("HEAD and OPTIONS of a public route need no credentials; of any other route they do", async () => {
  for (const path of ["/health", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"]) {
    const head = await fetch(`${srv.url}${path}`, { method: "HEAD" });
    assert.equal(head.status, 200, `HEAD ${path}`);
    assert.equal(await head.text(), "");
  }
  for (const [path, allow] of [["/health", "GET, HEAD, OPTIONS"], ["/auth/login", "POST, OPTIONS"], ["/v2/health/ready", "GET, HEAD, OPTIONS"]]) {
    const options = await fetch(`${srv.url}${path}`, { method: "OPTIONS" });
    assert.equal(options.status, 204, `OPTIONS ${path}`);
    assert.equal(options.headers.get("allow"), allow);
    assert.equal(await options.text(), "");
  }
  for (const path of ["/models", "/metrics", "/v1/models", "/api/tags", "/no/such/route"]) {
    assert.equal((await fetch(`${srv.url}${path}`, { method: "HEAD" })).status, 401, `HEAD ${path}`);
    const options = await fetch(`${srv.url}${path}`, { method: "OPTIONS" });
    assert.equal(options.status, 401, `OPTIONS ${path}`);
  }
  // Without CORS configured a preflight is an OPTIONS like any other: no special pass.
  const preflight = await fetch(`${srv.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST" } });
  assert.equal(preflight.status, 401);
  // With a credential, HEAD of a protected GET works as the GET does.
  assert.equal((await fetch(`${srv.url}/models`, { method: "HEAD", ...auth(userKey) })).status, 200);
});

test("GET /health: the status alone without credentials, the details with any valid one", async () => {
  const anonymous = await fetch(`${srv.url}/health`);
  assert.equal(anonymous.status, 200);
  assert.deepEqual(await anonymous.json(), { status: "healthy" });
  const wrongKey = await fetch(`${srv.url}/health`, auth("inf_nope_nope"));
  assert.deepEqual(await wrongKey.json(), { status: "healthy" }, "an invalid credential is no credential, not a 401 on a probe");
  for (const key of [userKey, adminKey]) {
    const full = (await (await fetch(`${srv.url}/health`, auth(key))).json()) as Record<string, any>;
    assert.equal(full.status, "healthy");
    assert.equal(typeof full.version, "string");
    assert.equal(typeof full.models_loaded, "number");
    assert.equal(typeof full.memory.budget_bytes, "number");
  }
});

test("API keys: use, roles, wrong or tampered keys", async () => {
  const asUser = await fetch(`${srv.url}/models`, auth(userKey));
  assert.equal(asUser.status, 200);
  const gen = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hi", max_tokens: 2 }, auth(userKey));
  assert.equal(gen.status, 200);
  // Admin-only operations.
  const load = await postJson(`${srv.url}/models/tiny/load`, {}, auth(userKey));
  assert.equal(load.status, 403);
  assert.equal(load.body.error.code, "AUTHORIZATION_FAILED");
  assert.equal((await postJson(`${srv.url}/models/tiny/load`, {}, auth(adminKey))).status, 200);
  const tampered = userKey.slice(0, -1) + (userKey.endsWith("A") ? "B" : "A");
  const bad = await fetch(`${srv.url}/models`, auth(tampered));
  assert.equal(bad.status, 401);
  assert.equal(((await bad.json()) as any).error.details.reason, "invalid_credentials");
  assert.equal((await fetch(`${srv.url}/models`, { headers: { authorization: "Basic abc" } })).status, 401);
  // OpenAI clients get the SDK's AuthenticationError / PermissionDeniedError.
  const noKey = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(noKey.models.list(), (err: unknown) => err instanceof OpenAI.AuthenticationError);
  const withKey = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: userKey, maxRetries: 0 });
  assert.ok((await withKey.models.list()).data.some((m) => m.id === "tiny"));
});

test("API key management over HTTP for admins: create, list without keys, revoke, expiry", async () => {
  const created = await postJson(`${srv.url}/auth/api-keys`, { user: "bob", name: "bob's", role: "user" }, auth(adminKey));
  assert.equal(created.status, 201);
  assert.match(created.body.key, /^inf_/);
  assert.equal((await fetch(`${srv.url}/models`, auth(created.body.key))).status, 200);
  const list = await fetch(`${srv.url}/auth/api-keys`, auth(adminKey)).then((r) => r.json() as Promise<any>);
  assert.ok(list.api_keys.some((k: { id: string }) => k.id === created.body.id));
  assert.ok(!JSON.stringify(list).includes(created.body.key), "keys are never listed");
  const revoked = await fetch(`${srv.url}/auth/api-keys/${created.body.id}`, { method: "DELETE", ...auth(adminKey) });
  assert.equal(revoked.status, 200);
  assert.equal((await fetch(`${srv.url}/models`, auth(created.body.key))).status, 401, "a revoked key stops working");
  assert.equal((await postJson(`${srv.url}/auth/api-keys`, { user: "x", name: "y" }, auth(userKey))).status, 403);
  const badExpiry = await postJson(`${srv.url}/auth/api-keys`, { user: "x", name: "y", expires_in: "soon" }, auth(adminKey));
  assert.equal(badExpiry.status, 400);
});

test("JWT: login, use, wrong password, tampered, alg none, expired", async () => {
  const { UserStore } = await import("../../src/auth/users.js");
  const { openDatabase } = await import("../../src/store/database.js");
  await new UserStore(openDatabase(srv.dataDir)).create("carol", "correct horse battery", "user");
  const wrong = await postJson(`${srv.url}/auth/login`, { username: "carol", password: "nope nope nope" });
  assert.equal(wrong.status, 401);
  const login = await postJson(`${srv.url}/auth/login`, { username: "carol", password: "correct horse battery" });
  assert.equal(login.status, 200);
  assert.equal(login.body.expires_in, 3600);
  const token: string = login.body.token;
  assert.equal((await fetch(`${srv.url}/models`, auth(token))).status, 200);
  const [h, p] = token.split(".");
  const payload = JSON.parse(Buffer.from(p!, "base64url").toString());
  const forged = `${h}.${b64url({ ...payload, role: "admin" })}.${token.split(".")[2]}`;
  assert.equal((await fetch(`${srv.url}/models`, auth(forged))).status, 401, "tampered payload");
  const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ ...payload, role: "admin" })}.`;
  assert.equal((await fetch(`${srv.url}/models`, auth(none))).status, 401, "alg none");
  const sign = (body: object) => {
    const head = b64url({ alg: "HS256", typ: "JWT" });
    const data = `${head}.${b64url(body)}`;
    return `${data}.${createHmac("sha256", "s".repeat(40)).update(data).digest("base64url")}`;
  };
  const now = Math.floor(Date.now() / 1000);
  assert.equal((await fetch(`${srv.url}/models`, auth(sign({ ...payload, iat: now - 7200, exp: now - 3600 })))).status, 401, "expired");
  assert.equal((await fetch(`${srv.url}/models`, auth(sign({ ...payload, iat: now, exp: now + 60 })))).status, 200, "a fresh token signed with the configured secret works");
});
