// gRPC through a real client: `api-version` (and a unary call's `traceparent`) in every call's response headers, the refusal of another
// major in request metadata, and the audit log of gRPC calls (model load and unload with the principal,
// failed and refused auth with the peer's address). Needs the real mnist-8.onnx (demo/models).
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { openDatabase } from "../../src/store/database.js";
import { bearer, call, callError, inferenceClient, type InferenceClient } from "../helpers/grpc-client.js";
import { repoRoot } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MNIST = path.join(repoRoot, "demo/models/mnist-8.onnx");
let srv: TestServer;
let client: InferenceClient;
let adminKey: string;
let userKey: string;

before(async () => {
  srv = await startTestServer({ models: { mnist: MNIST }, config: { auth: true, rateLimit: false, jwtSecret: "s".repeat(40) } });
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice", role: "user" }).key;
  client = inferenceClient(srv.grpcAddress!);
});
after(async () => {
  client.close();
  await srv.cleanup();
});

/** A unary call's response headers and its outcome. */
function withHeaders(method: "ServerLive" | "RepositoryIndex", metadata: Metadata): Promise<{ headers: Metadata; err: ServiceError | null }> {
  return new Promise((resolve) => {
    let headers = new Metadata();
    const fn = client[method].bind(client) as unknown as (req: object, md: Metadata, cb: (err: ServiceError | null) => void) => { on(e: "metadata", l: (m: Metadata) => void): void };
    const c = fn({}, metadata, (err) => resolve({ headers, err }));
    c.on("metadata", (m) => (headers = m));
  });
}

test("every call answers with api-version 1.0 in its headers, a refused one too", async () => {
  const live = await withHeaders("ServerLive", new Metadata());
  assert.equal(live.err, null);
  assert.deepEqual(live.headers.get("api-version"), ["1.0"]);
  const refused = await withHeaders("RepositoryIndex", new Metadata());
  assert.equal(refused.err?.code, status.UNAUTHENTICATED);
  assert.deepEqual(refused.headers.get("api-version"), ["1.0"]);
  // And the call's own trace context: a new trace, or the caller's continued.
  assert.match(String(live.headers.get("traceparent")[0]), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const traced = new Metadata();
  traced.set("traceparent", `00-${"4bf92f3577b34da6a3ce929d0e0e4736"}-00f067aa0ba902b7-01`);
  const continued = await withHeaders("ServerLive", traced);
  assert.match(String(continued.headers.get("traceparent")[0]), /^00-4bf92f3577b34da6a3ce929d0e0e4736-(?!00f067aa0ba902b7)[0-9a-f]{16}-01$/);
});

test("api-version metadata: 1.x is served, another major or a malformed one is INVALID_ARGUMENT UNSUPPORTED_API_VERSION", async () => {
  for (const v of ["1", "1.0", "1.4"]) {
    const md = bearer(userKey);
    md.set("api-version", v);
    assert.ok(await call(client, "RepositoryIndex", {}, md), v);
  }
  for (const v of ["2.0", "0", "latest"]) {
    const md = bearer(adminKey);
    md.set("api-version", v);
    const err = await callError(call(client, "RepositoryIndex", {}, md));
    assert.equal(err.code, status.INVALID_ARGUMENT, v);
    assert.match(err.details, /^UNSUPPORTED_API_VERSION: /, v);
    assert.deepEqual(err.metadata.get("inferno-error-code"), ["UNSUPPORTED_API_VERSION"]);
  }
});

test("RepositoryModelLoad and Unload on mnist-8 are audited with the principal; a user's try and a bad key as auth events", async () => {
  await call(client, "RepositoryModelLoad", { model_name: "mnist" }, bearer(adminKey));
  await call(client, "RepositoryModelUnload", { model_name: "mnist" }, bearer(adminKey));
  assert.equal((await callError(call(client, "RepositoryModelLoad", { model_name: "mnist" }, bearer(userKey)))).code, status.PERMISSION_DENIED);
  const forged = `inf_ZZZZZZZZZZZZ_${"q".repeat(43)}`;
  assert.equal((await callError(call(client, "RepositoryIndex", {}, bearer(forged)))).code, status.UNAUTHENTICATED);

  srv.app.audit.flush();
  const events = srv.app.audit.query({ limit: 1000 }).filter((e) => e.transport === "grpc");
  const models = events.filter((e) => e.type.startsWith("model."));
  assert.deepEqual(models.map((e) => [e.type, e.target, e.actor, e.actor_role, e.source]), [
    ["model.load", "mnist", "root", "admin", "127.0.0.1"],
    ["model.unload", "mnist", "root", "admin", "127.0.0.1"],
  ]);
  assert.equal(models[1]!.details.was_loaded, true);
  const denied = events.find((e) => e.type === "auth.denied");
  assert.deepEqual([denied?.actor, denied?.target, denied?.details.reason], ["alice", "/inference.GRPCInferenceService/RepositoryModelLoad", "role"]);
  const failed = events.filter((e) => e.type === "auth.failure" && e.credential === "api-key:ZZZZZZZZZZZZ");
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.source, "127.0.0.1");
  assert.ok(!JSON.stringify(events).includes("q".repeat(43)), "no secret recorded");
});
