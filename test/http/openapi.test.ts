// Needs no model. The OpenAPI document (GET /openapi.json) and its page (GET /docs), with auth on.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import Fastify from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { z } from "zod";
import { openapiPlugin } from "../../src/openapi/openapi-plugin.js";
import { routeDoc, tagOf } from "../../src/openapi/route-docs.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let userKey: string;
let adminKey: string;
let doc: any;
const PKG = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
// The same policy auth.test.ts checks by behaviour; the document must say it too.
const PUBLIC_GET = ["/health", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/ws", "/openapi.json", "/docs", "/", "/console/*"];
const PUBLIC = new Set([...PUBLIC_GET.map((p) => `GET ${p}`), "POST /auth/login", ...[...PUBLIC_GET, "/auth/login"].map((p) => `OPTIONS ${p}`)]);
const ENVELOPES = ["NativeError", "OpenAIError", "OllamaError", "KServeError"];
const envelopeOf = (path: string) =>
  path.startsWith("/v1/") ? "OpenAIError" : path.startsWith("/api/") ? "OllamaError" : path.startsWith("/v2") ? "KServeError" : "NativeError";
/** A route pattern as an OpenAPI path: `:param` → `{param}`, and a wildcard is the path parameter `{*}`. */
const openapiPath = (url: string) => url.replace(/:(\w+)/g, "{$1}").replace(/\*/g, "{*}");
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

before(async () => {
  srv = await startTestServer({ config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  userKey = keys.create({ user: "alice", name: "alice key", role: "user" }).key;
  adminKey = keys.create({ user: "root", name: "admin key", role: "admin" }).key;
  const res = await srv.app.inject({ method: "GET", url: "/openapi.json" });
  assert.equal(res.statusCode, 200, "the document is public");
  doc = res.json();
});
after(() => srv.cleanup());

test("the document is valid OpenAPI 3.1 and names the server", async () => {
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.deepEqual(result.errors, undefined);
  assert.equal(result.valid, true);
  assert.equal(validator.version, "3.1");
  assert.equal(doc.info.title, "Inferno");
  assert.equal(doc.info.version, PKG.version);
  assert.deepEqual(doc.components.securitySchemes.bearer, { ...doc.components.securitySchemes.bearer, type: "http", scheme: "bearer" });
  for (const name of ENVELOPES) assert.ok(doc.components.schemas[name], `${name} is a component`);
});

test("every route of the route table is documented, with a tag, a summary, its auth and its errors", () => {
  let checked = 0;
  for (const { method, url } of srv.app.routeTable) {
    // The docs UI's own routes (its assets, its copy of the document) and the console's static files
    // (@fastify/static hides them) are not part of the API; `GET /`, the console's page, is.
    if (url.startsWith("/docs/") || (method === "GET" && url === "/console/*")) continue;
    const path = openapiPath(url);
    const op = doc.paths[path]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${path} is in the document`);
    assert.ok(op.tags?.length === 1 && typeof op.tags[0] === "string", `${method} ${path} has a tag`);
    assert.ok(op.summary, `${method} ${path} has a summary`);
    const key = `${method} ${url}`;
    assert.deepEqual(op.security, PUBLIC.has(key) ? [] : [{ bearer: [] }], `${key}: security`);
    if (!PUBLIC.has(key)) assert.ok(op.responses["401"], `${key} documents its 401`);
    assert.ok(op.responses.default, `${key} documents its other errors`);
    assert.ok(op.parameters.some((p: any) => p.$ref === "#/components/parameters/ApiVersion"), `${key} takes API-Version`);
    assert.ok(Object.values<any>(op.responses).every((r) => r.headers?.["API-Version"]), `${key} answers API-Version`);
    for (const [status, response] of Object.entries<any>(op.responses)) {
      if (/^[23]/.test(status)) continue;
      const ref = response.content["application/json"].schema.$ref;
      assert.equal(ref, `#/components/schemas/${envelopeOf(url)}`, `${key} ${status} → ${ref}`);
    }
    checked++;
  }
  assert.ok(checked > 60, `${checked} routes checked`);
  // A route nobody described (as one added later) still gets a summary and its family's tag.
  assert.equal(routeDoc("GET", "/new/:id").summary, "GET /new/{id}");
  assert.equal(tagOf("/v1/new"), "OpenAI");
  assert.equal(tagOf("/new"), "Native");
});

test("sample routes: tag, envelope, admin role, streams and raw bodies", () => {
  const op = (method: string, path: string) => doc.paths[path][method];
  const ref = (o: any, status: string) => o.responses[status].content["application/json"].schema.$ref.split("/").pop();
  assert.equal(ref(op("post", "/v1/chat/completions"), "400"), "OpenAIError");
  assert.equal(ref(op("post", "/api/chat"), "400"), "OllamaError");
  assert.equal(ref(op("post", "/v2/models/{name}/infer"), "404"), "KServeError");
  assert.equal(ref(op("get", "/models"), "401"), "NativeError");
  assert.deepEqual(
    ["post /v1/chat/completions", "post /api/chat", "post /v2/models/{name}/infer", "get /models", "get /auth/api-keys", "post /batch", "get /metrics"].map((k) => {
      const [m, p] = k.split(" ");
      return op(m!, p!).tags[0];
    }),
    ["OpenAI", "Ollama", "KServe v2", "Native", "Auth", "Batch", "Admin & observability"],
  );
  // Admin-only routes say so and document the 403; others do not.
  for (const [m, p] of [["post", "/models"], ["delete", "/models/{id}"], ["get", "/auth/api-keys"], ["get", "/traces"]] as const) {
    assert.match(op(m, p).description, /admin role/, `${m} ${p}`);
    assert.equal(ref(op(m, p), "403"), "NativeError");
  }
  assert.equal(op("get", "/models").responses["403"], undefined);
  assert.equal(op("post", "/models").responses["201"].description, "Success");
  // Streams.
  assert.ok(op("post", "/v1/chat/completions").responses["200"].content["text/event-stream"]);
  assert.ok(op("post", "/v1/chat/completions").responses["200"].content["application/json"]);
  assert.ok(op("post", "/inference/stream").responses["200"].content["text/event-stream"]);
  assert.ok(op("post", "/api/chat").responses["200"].content["application/x-ndjson"]);
  // Routes whose bodies zod cannot describe, or that have no schema at all.
  assert.ok(op("post", "/models/{id}/inference").requestBody.content["application/octet-stream"]);
  assert.ok(op("post", "/v1/files").requestBody.content["multipart/form-data"]);
  assert.ok(op("get", "/v1/files/{id}/content").responses["200"].content["application/octet-stream"]);
  assert.ok(op("post", "/v2/models/{name}/infer").responses["200"].content["application/octet-stream"]);
  assert.match(op("get", "/ws").description, /Upgrade: websocket/);
  // The zod schemas, as converted: required fields and bounds survive.
  const chat = op("post", "/v1/chat/completions").requestBody.content["application/json"].schema;
  assert.ok(chat.required.includes("messages") && chat.properties.messages.minItems === 1);
});

test("the request examples are bodies their routes accept", async () => {
  const samples: Array<[string, string, string]> = [
    ["post", "/inference", "/inference"],
    ["post", "/models/{id}/inference", "/models/nope/inference"],
    ["post", "/models", "/models"],
    ["post", "/v1/chat/completions", "/v1/chat/completions"],
    ["post", "/api/chat", "/api/chat"],
    ["post", "/v2/models/{name}/infer", "/v2/models/nope/infer"],
  ];
  for (const [method, path, url] of samples) {
    const example = doc.paths[path][method].requestBody.content["application/json"].example;
    assert.ok(example, `${method} ${path} has an example`);
    // Past auth and the schema, each fails on what this server lacks: the model, or (POST /models) the file.
    const res = await srv.app.inject({ method: "POST", url, headers: auth(adminKey), payload: example });
    assert.ok([403, 404].includes(res.statusCode), `${path}: ${res.statusCode} ${res.body}`);
    assert.doesNotMatch(res.body, /invalid body|invalid_request/i, path);
  }
});

test("the error bodies are the documented envelopes", async () => {
  const cases: Array<[string, string, unknown, string]> = [
    ["POST", "/v1/chat/completions", {}, "OpenAIError"],
    ["POST", "/api/chat", {}, "OllamaError"],
    ["POST", "/v2/models/nope/infer", {}, "KServeError"],
    ["GET", "/models/nope", undefined, "NativeError"],
  ];
  for (const [method, url, payload, name] of cases) {
    const res = await srv.app.inject({ method: method as "GET", url, headers: auth(userKey), ...(payload ? { payload } : {}) });
    assert.ok(res.statusCode >= 400, `${url}: ${res.statusCode}`);
    const body = res.json();
    const schema = doc.components.schemas[name];
    assert.deepEqual(Object.keys(body).sort(), [...schema.required].sort(), `${url}: ${res.body}`);
    if (schema.properties.error.type === "object") {
      for (const field of schema.properties.error.required) assert.ok(field in body.error, `${url}: error.${field}`);
    } else assert.equal(typeof body.error, "string");
  }
});

test("/docs is public and loads only local assets", async () => {
  const page = await srv.app.inject({ method: "GET", url: "/docs" });
  assert.equal(page.statusCode, 200);
  assert.match(page.headers["content-type"] as string, /^text\/html/);
  const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.some((r) => r.endsWith(".js")) && refs.some((r) => r.endsWith(".css")), "scripts and styles are referenced");
  for (const ref of refs) {
    assert.doesNotMatch(ref, /^(https?:)?\/\//, `${ref} is local`);
    const asset = await srv.app.inject({ method: "GET", url: new URL(ref, "http://x/docs").pathname });
    assert.equal(asset.statusCode, 200, `${ref} is served without credentials`);
  }
  assert.doesNotMatch(page.body, /<(script|link)[^>]+(src|href)="(https?:)?\/\//);
  // The UI fetches its copy of the document: the same one.
  const json = await srv.app.inject({ method: "GET", url: "/docs/json" });
  assert.equal(json.statusCode, 200);
  assert.deepEqual(json.json(), doc);
});

test("the docs never weaken auth", async () => {
  const without = await srv.app.inject({ method: "GET", url: "/models" });
  assert.equal(without.statusCode, 401);
  assert.equal((await srv.app.inject({ method: "GET", url: "/models", headers: auth(userKey) })).statusCode, 200);
  // Only GET (and so HEAD and OPTIONS) of the documentation routes is public.
  for (const method of ["POST", "PUT", "DELETE"] as const) {
    for (const url of ["/openapi.json", "/docs", "/docs/json"]) {
      assert.equal((await srv.app.inject({ method, url, payload: {} })).statusCode, 401, `${method} ${url}`);
    }
  }
  // Nothing else under /docs opens up: an unknown path there is as closed as anywhere.
  assert.equal((await srv.app.inject({ method: "GET", url: "/docsx" })).statusCode, 401);
  assert.equal((await srv.app.inject({ method: "GET", url: "/openapi.yaml" })).statusCode, 401);
});

test("a route added later by any plugin is documented with no entry anywhere", async (t) => {
  const app = Fastify({ logger: false });
  t.after(() => app.close());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(openapiPlugin, { metricsPublic: false });
  await app.register(async (scope) => {
    scope.post(
      "/v1/things/:id",
      { schema: { params: z.object({ id: z.string() }), body: z.object({ model: z.string() }), response: { 200: z.object({ ok: z.boolean() }) } }, config: { role: "admin" } },
      async () => ({ ok: true }),
    );
  });
  await app.ready();
  const later = (app.swagger() as any).paths["/v1/things/{id}"].post;
  assert.equal(later.tags[0], "OpenAI");
  assert.equal(later.summary, "POST /v1/things/{id}");
  assert.deepEqual(later.security, [{ bearer: [] }]);
  assert.match(later.description, /admin role/);
  for (const status of ["400", "401", "403", "404", "503", "default"]) {
    assert.equal(later.responses[status].content["application/json"].schema.$ref, "#/components/schemas/OpenAIError", status);
  }
  // Its own response schema is kept.
  assert.deepEqual(later.responses["200"].content["application/json"].schema.required, ["ok"]);
});
