// gRPC calls under the server's policies, through a real client: auth (missing, bad, wrong role, revoked),
// rate limits with the retry delay in trailers, queue full, deadlines and cancellation that free the
// sequence, malformed and oversize messages, TLS and mTLS, and the drain on shutdown.
import assert from "node:assert/strict";
import { request as httpsRequest } from "node:https";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { bearer, call, callError, inferenceClient, type InferenceClient } from "../helpers/grpc-client.js";
import { tempDir } from "../helpers/paths.js";
import { holdSequence, startTestServer, waitIdle, type TestServer } from "../helpers/server.js";
import { makeCerts, type TestCerts } from "../helpers/tls.js";

let srv: TestServer;
let client: InferenceClient;
let adminKey: string;
let userKey: string;
let limitedKey: string;
let revokedKey: string;

const linInfer = { model_name: "lin", inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] };
/** A generation long enough to still run when the test acts on it (ignore_eos: the tiny model never stops early). */
const longText = (extra: Record<string, object> = {}) => ({
  model_name: "tiny",
  parameters: { max_tokens: { int64_param: 6000 }, ignore_eos: { bool_param: true }, ...extra },
  inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("hello")] } }],
});
const shortText = {
  model_name: "tiny", parameters: { max_tokens: { int64_param: 4 } },
  inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("hello")] } }],
};

before(async () => {
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    config: {
      auth: true, rateLimit: true, requestsPerMinute: 10_000, concurrentRequests: 100, jwtSecret: "s".repeat(40),
      parallel: 1, queueSize: 0, contextSize: 8192, maxTokensLimit: 8000, bodyLimit: 64 * 1024,
    },
  });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice", role: "user" }).key;
  limitedKey = keys.create({ user: "bob", name: "bob", role: "user", limits: { requestsPerMinute: 3 } }).key;
  const revoked = keys.create({ user: "carol", name: "carol", role: "user" });
  keys.revoke(revoked.id);
  revokedKey = revoked.key;
  client = inferenceClient(srv.grpcAddress!);
});
after(async () => {
  client.close();
  await srv.cleanup();
});

test("auth: health is public; inference needs a valid key; repository changes need admin", async () => {
  assert.deepEqual(await call(client, "ServerLive", {}), { live: true });
  assert.deepEqual(await call(client, "ServerReady", {}), { ready: true });
  const none = await callError(call(client, "ModelInfer", linInfer));
  assert.equal(none.code, status.UNAUTHENTICATED);
  assert.match(none.details, /^AUTHENTICATION_FAILED: .*authorization: Bearer/);
  for (const token of ["inf_not-a-real-key", "not.a.jwt", revokedKey]) {
    assert.equal((await callError(call(client, "ModelInfer", linInfer, bearer(token)))).code, status.UNAUTHENTICATED, token);
  }
  const ok: any = await call(client, "ModelInfer", linInfer, bearer(userKey));
  assert.equal(ok.outputs[0].name, "probs");
  const denied = await callError(call(client, "RepositoryModelUnload", { model_name: "lin" }, bearer(userKey)));
  assert.equal(denied.code, status.PERMISSION_DENIED);
  assert.match(denied.details, /^AUTHORIZATION_FAILED: /);
  await call(client, "RepositoryModelLoad", { model_name: "lin" }, bearer(adminKey));
  // A stream without credentials ends with the status at its first request.
  const stream = client.ModelStreamInfer();
  const refused = new Promise<ServiceError>((resolve) => stream.on("error", resolve));
  stream.on("data", () => assert.fail("no answer without credentials"));
  stream.write(linInfer);
  const streamErr = await refused;
  assert.equal(streamErr.code, status.UNAUTHENTICATED);
  assert.match(streamErr.details, /^AUTHENTICATION_FAILED: /);
});

test("rate limits: over the key's requests per minute is RESOURCE_EXHAUSTED with retry-after in trailers", async () => {
  for (let i = 0; i < 3; i++) await call(client, "ModelInfer", linInfer, bearer(limitedKey));
  const refused = await callError(call(client, "ModelInfer", linInfer, bearer(limitedKey)));
  assert.equal(refused.code, status.RESOURCE_EXHAUSTED);
  assert.match(refused.details, /^RATE_LIMIT_EXCEEDED: /);
  assert.ok(Number(refused.metadata.get("retry-after")[0]) >= 1);
  // Counted with the same key's HTTP requests: the REST route is refused too.
  const rest = await fetch(`${srv.url}/models`, { headers: { authorization: `Bearer ${limitedKey}` } });
  assert.equal(rest.status, 429);
});

test("queue full: UNAVAILABLE while the only sequence is held", async () => {
  await call(client, "ModelInfer", shortText, bearer(userKey)); // loads the model
  const holder = await holdSequence(srv.app, "tiny");
  try {
    const full = await callError(call(client, "ModelInfer", shortText, bearer(userKey)));
    assert.equal(full.code, status.UNAVAILABLE);
    assert.match(full.details, /^SERVICE_UNAVAILABLE: /);
  } finally {
    await holder.return(undefined as never);
  }
  await call(client, "ModelInfer", shortText, bearer(userKey));
});

/** The one sequence of the tiny model is given back within 200 ms (a 6,000-token generation would hold it for seconds). */
async function released(): Promise<void> {
  const model = srv.app.registry.getLoaded("tiny") as LlamaTextModel;
  await waitIdle(model, 200, 5);
  assert.equal(model.inFlight, 0, "the sequence is free again");
}

/** ModelInfer succeeds at once (queueSize 0: it would be refused while the one sequence is still held). */
async function sequenceFree(): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await call(client, "ModelInfer", shortText, bearer(userKey));
      return;
    } catch (err) {
      if ((err as ServiceError).code !== status.UNAVAILABLE || i >= 20) throw err;
      await sleep(50);
    }
  }
}

test("the client's deadline is honoured: DEADLINE_EXCEEDED and the generation stops", async () => {
  const started = Date.now();
  const err = await callError(call(client, "ModelInfer", longText(), bearer(userKey), { deadline: Date.now() + 300 }));
  assert.equal(err.code, status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - started < 2000);
  await released();
  await sequenceFree();
});

test("the server's time limit ends a generation with DEADLINE_EXCEEDED (TIMEOUT), not a short success", async () => {
  const limited = await startTestServer({
    files: { "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    config: { requestTimeoutMs: 1000, contextSize: 8192, maxTokensLimit: 8000 },
  });
  const c = inferenceClient(limited.grpcAddress!);
  try {
    await limited.app.registry.load("tiny"); // the limit is for generation, not the first load
    const err = await callError(call(c, "ModelInfer", longText()));
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    assert.match(err.details, /^TIMEOUT: /);
  } finally {
    c.close();
    await limited.cleanup();
  }
});

test("cancelling a ModelStreamInfer call mid-stream stops generation and frees the sequence", async () => {
  const stream = client.ModelStreamInfer(bearer(userKey));
  let chunks = 0;
  const ended = new Promise<ServiceError>((resolve) => stream.on("error", (e: ServiceError) => resolve(e)));
  stream.on("data", () => {
    chunks++;
    if (chunks === 3) stream.cancel();
  });
  stream.write(longText({ stream: { bool_param: true } }));
  assert.equal((await ended).code, status.CANCELLED);
  await released();
  await sequenceFree();
});

test("a malformed protobuf message is INVALID_ARGUMENT; an oversize one RESOURCE_EXHAUSTED; the server goes on", async () => {
  const raw = (bytes: Buffer) =>
    new Promise<ServiceError>((resolve) => {
      client.makeUnaryRequest(
        "/inference.GRPCInferenceService/ModelInfer", (b: Buffer) => b, (b: Buffer) => b, bytes, bearer(userKey), {},
        (err) => resolve(err as ServiceError),
      );
    });
  // Field 5 (inputs) declares 10 bytes; 2 follow.
  const garbage = await raw(Buffer.from([0x2a, 0x0a, 0x01, 0x02]));
  assert.equal(garbage.code, status.INVALID_ARGUMENT);
  assert.match(garbage.details, /^INVALID_REQUEST: the request is not a valid inference\.ModelInferRequest/);
  const big = await callError(call(client, "ModelInfer", {
    model_name: "lin", inputs: [{ name: "x", datatype: "FP32", shape: [1, 4] }], raw_input_contents: [Buffer.alloc(128 * 1024)],
  }, bearer(userKey)));
  assert.equal(big.code, status.RESOURCE_EXHAUSTED);
  assert.ok(await call(client, "ModelInfer", linInfer, bearer(userKey)));
});

test("metrics count gRPC calls by method and status under transport=\"grpc\"", async () => {
  const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${adminKey}` } });
  const text = await res.text();
  assert.match(text, /inferno_inference_requests_total\{model="lin",route="\/inference\.GRPCInferenceService\/ModelInfer",status="OK",transport="grpc"\} \d+/);
  assert.match(text, /route="\/inference\.GRPCInferenceService\/ModelInfer",status="UNAUTHENTICATED",transport="grpc"/);
});

test("drain: ServerReady turns false, new calls get UNAVAILABLE, an open stream finishes within the grace", async () => {
  const drainSrv = await startTestServer({ files: { "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) }, config: { parallel: 2, contextSize: 8192, maxTokensLimit: 8000 } });
  const c = inferenceClient(drainSrv.grpcAddress!);
  try {
    const stream = c.ModelStreamInfer();
    let final = false;
    let firstChunk: () => void;
    const started = new Promise<void>((resolve) => (firstChunk = resolve));
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (msg: any) => {
        firstChunk();
        if (msg.error_message) reject(new Error(msg.error_message));
        if (msg.infer_response?.parameters?.triton_final_response?.bool_param) final = true;
      });
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    stream.write({ ...longText({ stream: { bool_param: true } }), parameters: { max_tokens: { int64_param: 300 }, ignore_eos: { bool_param: true }, stream: { bool_param: true } } });
    stream.end();
    await started;
    const drained = drainSrv.app.drain(20_000);
    assert.deepEqual(await call(c, "ServerReady", {}), { ready: false });
    const refused = await callError(call(c, "ModelInfer", shortText));
    assert.equal(refused.code, status.UNAVAILABLE);
    assert.match(refused.details, /shutting down/);
    await done;
    assert.ok(final, "the open stream got its final response");
    assert.deepEqual(await drained, { openAtStart: 1, endedByGrace: 0 });
  } finally {
    c.close();
    await drainSrv.cleanup();
  }
});

test("TLS and mTLS: gRPC and HTTPS with the configured certificates; a client without one is refused", async () => {
  const tmp = await tempDir("inferno-tls-");
  let certs: TestCerts;
  try {
    certs = makeCerts(tmp.dir);
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  const tls = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx() },
    config: { tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsClientCa: certs.caCert },
  });
  const ca = certs.read(certs.caCert);
  const clients: InferenceClient[] = [];
  const tlsClient = (key?: Buffer, cert?: Buffer) => {
    const c = inferenceClient(tls.grpcAddress!, credentials.createSsl(ca, key ?? null, cert ?? null));
    clients.push(c);
    return c;
  };
  try {
    const ok: any = await call(tlsClient(certs.read(certs.clientKey), certs.read(certs.clientCert)), "ModelInfer", linInfer);
    assert.equal(ok.outputs[0].name, "probs");
    const noCert = await callError(call(tlsClient(), "ServerLive", {}, new Metadata(), { deadline: Date.now() + 3000 }));
    assert.equal(noCert.code, status.UNAVAILABLE);
    const stranger = await callError(call(tlsClient(certs.read(certs.strangerKey), certs.read(certs.strangerCert)), "ServerLive", {}, new Metadata(), { deadline: Date.now() + 3000 }));
    assert.equal(stranger.code, status.UNAVAILABLE);
    const plain = inferenceClient(tls.grpcAddress!);
    clients.push(plain);
    assert.equal((await callError(call(plain, "ServerLive", {}, new Metadata(), { deadline: Date.now() + 3000 }))).code, status.UNAVAILABLE);
    // HTTPS on the same certificates.
    const get = (key?: Buffer, cert?: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${tls.url}/health`, { ca, ...(key ? { key, cert } : {}) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    assert.equal(await get(certs.read(certs.clientKey), certs.read(certs.clientCert)), 200);
    await assert.rejects(get(), "an HTTPS client without a certificate is refused in the handshake");
  } finally {
    for (const c of clients) c.close();
    await tls.cleanup();
    await tmp.cleanup();
  }
});
