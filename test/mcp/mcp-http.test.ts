// Needs ../shared/models (stories260K.gguf, mnist-8.onnx) and a generated tiny GGUF (for a long generation
// to cancel). MCP at /mcp through the SDK's own client over Streamable HTTP against a listening server
// with auth on: tools and their role filter, generate with progress and cancellation, chat, embed, rerank,
// tensor inference, batches, resources, hostile input, and sessions bound to their user.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { mcpHttpClient, structured, textOf } from "../helpers/mcp-client.js";
import { realModel } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";

const stories = realModel("stories260K.gguf");
const mnist = realModel("mnist-8.onnx");
const skip = stories.skip || mnist.skip;

let srv: TestServer;
let adminKey: string;
let userKey: string;
let user: Client;
let admin: Client;
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } };
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

before(async () => {
  if (skip) return;
  srv = await startTestServer({
    models: { stories: stories.path, mnist: mnist.path },
    files: { "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    config: { auth: true, jwtSecret: "s".repeat(40), contextSize: 8192, maxTokensLimit: 8000, parallel: 1, queueSize: 4 },
  });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice", role: "user" }).key;
  user = (await mcpHttpClient(srv.url, userKey)).client;
  admin = (await mcpHttpClient(srv.url, adminKey)).client;
});
after(async () => {
  await user?.close();
  await admin?.close();
  await srv?.cleanup();
});

test("no credential: 401 with WWW-Authenticate, and the SDK client cannot connect", { skip }, async () => {
  const res = await postJson(`${srv.url}/mcp`, INIT, { headers: MCP_HEADERS });
  assert.equal(res.status, 401);
  assert.equal(res.body.error.code, "AUTHENTICATION_FAILED");
  assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
  const refused = (e: any) => e.code === 401 && /AUTHENTICATION_FAILED/.test(e.message);
  await assert.rejects(mcpHttpClient(srv.url), refused);
  await assert.rejects(mcpHttpClient(srv.url, "inf_not-a-key"), refused);
});

test("a browser page of an origin not in corsOrigins is refused, even with a valid key (DNS rebinding)", { skip }, async () => {
  for (const origin of ["http://evil.example", "http://127.0.0.1:" + new URL(srv.url).port, "null"]) {
    const res = await postJson(`${srv.url}/mcp`, INIT, { headers: { ...MCP_HEADERS, origin, authorization: `Bearer ${userKey}` } });
    assert.equal(res.status, 403, origin);
    assert.equal(res.body.error.code, "AUTHORIZATION_FAILED");
    assert.equal(res.body.error.details.reason, "origin");
  }
});

test("tools are listed by role with the routes' schemas; an admin tool is refused to a user", { skip }, async () => {
  const names = (await user.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(names, ["chat", "embed", "generate", "get_batch", "infer_tensor", "list_models", "rerank", "submit_batch"]);
  const adminNames = (await admin.listTools()).tools.map((t) => t.name);
  assert.ok(adminNames.includes("load_model") && adminNames.includes("unload_model"));
  const generate = (await user.listTools()).tools.find((t) => t.name === "generate")!;
  assert.deepEqual(generate.inputSchema.required, ["prompt", "model"]);
  assert.equal((generate.inputSchema.properties as any).prompt.type, "string");
  assert.equal((generate.inputSchema.properties as any).stream, undefined);

  const refused = await user.callTool({ name: "load_model", arguments: { model: "stories" } });
  assert.equal(refused.isError, true);
  assert.equal(structured(refused).error.code, "AUTHORIZATION_FAILED");
  const loaded = await admin.callTool({ name: "load_model", arguments: { model: "stories" } });
  assert.equal(loaded.isError, undefined, textOf(loaded));
  assert.equal(structured(loaded).status, "loaded");
  // The load is in the audit log as the admin's, over MCP.
  const audit = await srv.app.inject({ method: "GET", url: "/audit?type=model.load", headers: { authorization: `Bearer ${adminKey}` } });
  const loads = (audit.json().events as Array<{ type: string; actor: string; transport: string; target: string }>).filter((e) => e.type === "model.load");
  assert.deepEqual(loads.map((e) => [e.actor, e.transport, e.target]), [["root", "mcp", "stories"]]);
});

test("list_models: capabilities and load state", { skip }, async () => {
  const r = await user.callTool({ name: "list_models", arguments: {} });
  const models = structured(r).models as Array<{ id: string; capabilities: string[]; loaded: boolean }>;
  const byId = Object.fromEntries(models.map((m) => [m.id, m]));
  assert.ok(byId.stories!.capabilities.includes("text-generation"));
  assert.deepEqual(byId.mnist!.capabilities, ["tensor-inference"]);
  assert.equal(typeof byId.mnist!.loaded, "boolean");
  assert.match(textOf(r), /stories \(gguf/);
});

test("generate: tokens arrive as progress notifications and add up to the answer", { skip }, async () => {
  const progress: Array<{ progress: number; total?: number; message?: string }> = [];
  const r = await user.callTool(
    { name: "generate", arguments: { model: "stories", prompt: "Once upon a time", max_tokens: 24, temperature: 0 } },
    undefined,
    { onprogress: (p) => void progress.push(p) },
  );
  assert.equal(r.isError, undefined, textOf(r));
  const answer = structured(r);
  assert.equal(answer.choices[0].text, textOf(r));
  assert.ok(answer.usage.completion_tokens > 0);
  assert.equal(progress.length, answer.usage.completion_tokens);
  assert.deepEqual(progress.map((p) => p.progress), progress.map((_, i) => i + 1));
  assert.equal(progress[0]!.total, 24);
  assert.equal(progress.map((p) => p.message).join(""), answer.choices[0].text);
});

test("cancelling a generate stops it and frees the sequence", { skip }, async () => {
  const controller = new AbortController();
  let seen = 0;
  const call = user.callTool(
    { name: "generate", arguments: { model: "tiny", prompt: "hello", max_tokens: 6000, ignore_eos: true } },
    undefined,
    { signal: controller.signal, onprogress: () => void (++seen === 3 && controller.abort("enough")) },
  );
  await assert.rejects(call);
  const model = srv.app.registry.getLoaded("tiny") as LlamaTextModel;
  for (let i = 0; i < 100 && model.inFlight > 0; i++) await sleep(20);
  assert.equal(model.inFlight, 0, "the sequence is free again");
  const stoppedAt = seen;
  await sleep(200);
  assert.equal(seen, stoppedAt, "no progress after the cancel");
  assert.ok(seen < 1000, `stopped after ${seen} tokens`);
  // The one sequence (parallel 1) serves the next call at once.
  const next = await user.callTool({ name: "generate", arguments: { model: "tiny", prompt: "hi", max_tokens: 2 } });
  assert.equal(next.isError, undefined, textOf(next));
});

test("chat answers as the assistant, with usage", { skip }, async () => {
  const r = await user.callTool({ name: "chat", arguments: { model: "stories", messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 12, temperature: 0 } });
  assert.equal(r.isError, undefined, textOf(r));
  const s = structured(r);
  assert.equal(s.message.role, "assistant");
  assert.equal(typeof s.message.content, "string");
  assert.ok(s.usage.prompt_tokens > 0 && s.usage.completion_tokens > 0);
});

test("embed on a model that embeds; rerank refused where the model cannot rank", { skip }, async () => {
  const e = await user.callTool({ name: "embed", arguments: { model: "stories", input: ["a cat", "a dog"] } });
  assert.equal(e.isError, undefined, textOf(e));
  const data = structured(e).data as Array<{ embedding: number[] }>;
  assert.equal(data.length, 2);
  assert.ok(data[0]!.embedding.length > 0);
  const norm = Math.hypot(...data[0]!.embedding);
  assert.ok(Math.abs(norm - 1) < 1e-3, `unit vectors (${norm})`);

  const r = await user.callTool({ name: "rerank", arguments: { model: "stories", query: "cat", documents: ["a cat", "a dog"] } });
  assert.equal(r.isError, true);
  assert.equal(structured(r).error.code, "UNSUPPORTED_OPERATION");
  assert.match(textOf(r), /^UNSUPPORTED_OPERATION: /);
});

test("infer_tensor runs MNIST", { skip }, async () => {
  const image = [[Array.from({ length: 28 }, () => new Array(28).fill(0))]];
  const r = await user.callTool({ name: "infer_tensor", arguments: { model: "mnist", inputs: { Input3: image }, layout: "flat" } });
  assert.equal(r.isError, undefined, textOf(r));
  const out = structured(r).outputs.Plus214_Output_0;
  assert.deepEqual(out.shape, [1, 10]);
  assert.equal(out.data.length, 10);
  const wrong = await user.callTool({ name: "infer_tensor", arguments: { model: "mnist", inputs: { nope: [1] } } });
  assert.equal(structured(wrong).error.code, "INVALID_REQUEST");
  const notTensor = await user.callTool({ name: "infer_tensor", arguments: { model: "stories", inputs: {} } });
  assert.equal(structured(notTensor).error.code, "UNSUPPORTED_OPERATION");
});

test("submit_batch and get_batch: the batch runs; another user cannot see it", { skip }, async () => {
  const s = await user.callTool({ name: "submit_batch", arguments: { model: "stories", max_tokens: 4, requests: [{ id: "a", prompt: "Once" }, { id: "b", prompt: "The" }] } });
  assert.equal(s.isError, undefined, textOf(s));
  const id = structured(s).batch_id as string;
  assert.equal(structured(s).total_requests, 2);
  let status: any;
  for (let i = 0; i < 200; i++) {
    status = structured(await user.callTool({ name: "get_batch", arguments: { batch_id: id, results: true } }));
    if (status.status === "completed" || status.status === "failed") break;
    await sleep(50);
  }
  assert.equal(status.status, "completed");
  assert.deepEqual(status.results.map((r: any) => [r.id, r.status]), [["a", "completed"], ["b", "completed"]]);
  // Admins see every batch; a batch id of nobody's is not found.
  assert.equal(structured(await admin.callTool({ name: "get_batch", arguments: { batch_id: id } })).status, "completed");
  const missing = await user.callTool({ name: "get_batch", arguments: { batch_id: "batch_nope" } });
  assert.equal(structured(missing).error.code, "NOT_FOUND");
  const dup = await user.callTool({ name: "submit_batch", arguments: { model: "stories", requests: [{ id: "a", prompt: "x" }, { id: "a", prompt: "y" }] } });
  assert.equal(structured(dup).error.code, "INVALID_REQUEST");
  assert.match(structured(dup).error.message, /duplicate request id/);
});

test("resources: each model's metadata", { skip }, async () => {
  const { resources } = await user.listResources();
  assert.ok(resources.some((r) => r.uri === "inferno://models/mnist"));
  const { resourceTemplates } = await user.listResourceTemplates();
  assert.equal(resourceTemplates[0]!.uriTemplate, "inferno://models/{id}");
  const read = await user.readResource({ uri: "inferno://models/mnist" });
  const model = JSON.parse((read.contents[0] as { text: string }).text);
  assert.equal(model.id, "mnist");
  assert.deepEqual(model.capabilities, ["tensor-inference"]);
  const err = await user.readResource({ uri: "inferno://models/nope" }).catch((e: unknown) => e);
  assert.ok(err instanceof McpError);
  assert.equal(err.code, -32002);
  assert.equal((err.data as { code: string }).code, "MODEL_NOT_FOUND");
});

test("hostile input: coded errors, and the session goes on", { skip }, async () => {
  const bad = await user.callTool({ name: "generate", arguments: { model: "stories", prompt: 42 } });
  assert.equal(bad.isError, true);
  assert.equal(structured(bad).error.code, "INVALID_REQUEST");
  assert.equal(structured(bad).error.param, "prompt");
  const over = await user.callTool({ name: "generate", arguments: { model: "stories", prompt: "x", max_tokens: 9000 } });
  assert.equal(structured(over).error.code, "INVALID_REQUEST");
  const unknownModel = await user.callTool({ name: "generate", arguments: { model: "nope", prompt: "x" } });
  assert.equal(structured(unknownModel).error.code, "MODEL_NOT_FOUND");
  const unknownTool = await user.callTool({ name: "rm_rf", arguments: {} });
  assert.equal(structured(unknownTool).error.code, "NOT_FOUND");
  const noArgs = await user.callTool({ name: "embed" });
  assert.equal(structured(noArgs).error.code, "INVALID_REQUEST");
  assert.ok((await user.listTools()).tools.length > 0, "the session still works");

  const auth = { ...MCP_HEADERS, authorization: `Bearer ${userKey}` };
  const garbage = await postJson(`${srv.url}/mcp`, "{not json", { headers: auth });
  assert.equal(garbage.status, 400);
  assert.equal(garbage.body.error.code, "INVALID_REQUEST");
  const notRpc = await postJson(`${srv.url}/mcp`, { hello: "world" }, { headers: auth });
  assert.equal(notRpc.body.error.code, "INVALID_REQUEST");
  const noSession = await postJson(`${srv.url}/mcp`, { jsonrpc: "2.0", id: 2, method: "tools/list" }, { headers: auth });
  assert.equal(noSession.status, 400);
  assert.match(noSession.body.error.message, /Mcp-Session-Id/);
  const unknown = await postJson(`${srv.url}/mcp`, { jsonrpc: "2.0", id: 2, method: "tools/list" }, { headers: { ...auth, "mcp-session-id": "nope" } });
  assert.equal(unknown.status, 404);
  // A session is its user's: the admin's session id does not work with alice's key.
  const adminSession = (admin as unknown as { _transport: { sessionId: string } })._transport.sessionId;
  const stolen = await postJson(`${srv.url}/mcp`, { jsonrpc: "2.0", id: 2, method: "tools/list" }, { headers: { ...auth, "mcp-session-id": adminSession } });
  assert.equal(stolen.status, 404);
  assert.equal(stolen.body.error.code, "NOT_FOUND");
  const get = await fetch(`${srv.url}/mcp`, { headers: { authorization: `Bearer ${userKey}`, accept: "text/event-stream" } });
  assert.equal(get.status, 400);
  await get.body?.cancel();
});
