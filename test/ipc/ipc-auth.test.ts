// IPC under auth and shutdown: hello with a key or JWT first, roles, per-request re-checks (a revoked key
// stops working on an open connection), and the SIGTERM drain.
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { connect, InfernoIpcError } from "inferno/client";
import { connect as distConnect } from "../../src/client/index.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { tempDir } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let socketPath: string;
let adminKey: string;
let userKey: string;
let revoke: () => void;
let doomedKey: string;
const x = { x: { datatype: "FP32", shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } };

before(async () => {
  tmp = await tempDir("inferno-ipc-auth-");
  socketPath = path.join(tmp.dir, "s.sock");
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) },
    config: { auth: true, rateLimit: false, jwtSecret: "s".repeat(40), ipcSocket: socketPath, contextSize: 8192, maxTokensLimit: 8000 },
  });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  adminKey = keys.create({ user: "root", name: "admin", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice", role: "user" }).key;
  const doomed = keys.create({ user: "dave", name: "dave", role: "user" });
  doomedKey = doomed.key;
  revoke = () => void keys.revoke(doomed.id);
});
after(async () => {
  await srv.cleanup();
  await tmp.cleanup();
});

test("the package exports the client as inferno/client", () => {
  assert.equal(connect, distConnect);
});

test("auth: a request before hello, or a hello with a bad token, is refused and the connection closed", async () => {
  await assert.rejects(connect(socketPath, { token: "inf_nope_nope" }), (e: InfernoIpcError) => e.code === "AUTHENTICATION_FAILED");
  // Without a token: hello succeeds only when auth is off; here it is refused.
  await assert.rejects(connect(socketPath), (e: InfernoIpcError) => {
    assert.equal(e.code, "AUTHENTICATION_FAILED");
    assert.match(e.message, /token/);
    return true;
  });
});

test("roles: a user infers and generates; load and unload need admin", async () => {
  const user = await connect(socketPath, { token: userKey });
  try {
    const r = await user.infer("lin", x);
    assert.ok(r.outputs.probs);
    const g = await user.generate("tiny", { prompt: "hi", max_tokens: 3 });
    assert.equal(g.usage.completion_tokens, 3);
    await assert.rejects(user.load("lin"), (e: InfernoIpcError) => e.code === "AUTHORIZATION_FAILED");
  } finally {
    user.close();
  }
  const admin = await connect(socketPath, { token: adminKey });
  try {
    assert.equal((await admin.load("lin")).status, "loaded");
    assert.equal((await admin.unload("lin")).was_loaded, true);
  } finally {
    admin.close();
  }
});

test("a key revoked while its connection is open stops working at the next request", async () => {
  const c = await connect(socketPath, { token: doomedKey });
  try {
    await c.infer("lin", x);
    revoke();
    await assert.rejects(c.infer("lin", x), (e: InfernoIpcError) => e.code === "AUTHENTICATION_FAILED");
  } finally {
    c.close();
  }
});

test("drain: a running stream finishes, new requests get SERVICE_UNAVAILABLE; a server started on the path meanwhile keeps its socket; the client reconnects to it", async () => {
  const dir = await tempDir("inferno-ipc-drain-");
  const sock = path.join(dir.dir, "d.sock");
  const s = await startTestServer({ files: { "tiny.gguf": buildTinyLlamaGguf({ contextLength: 8192 }) }, config: { ipcSocket: sock, contextSize: 8192, maxTokensLimit: 8000 } });
  const c = await connect(sock);
  try {
    const stream = c.generate("tiny", { prompt: "x", max_tokens: 300, ignore_eos: true, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const drained = s.app.drain(20_000);
    await assert.rejects(c.generate("tiny", { prompt: "y", max_tokens: 2 }), (e: InfernoIpcError) => {
      assert.equal(e.code, "SERVICE_UNAVAILABLE");
      assert.match(e.message, /shutting down/);
      return true;
    });
    // The next server may take the path while this one still drains; this one's shutdown leaves it alone.
    const again = await startTestServer({ config: { ipcSocket: sock } });
    try {
      while (!(await it.next()).done);
      assert.equal((await stream.result).finish_reason, "length");
      assert.deepEqual(await drained, { openAtStart: 1, endedByGrace: 0 });
      assert.ok((await stat(sock)).isSocket(), "the new server's socket is still there");
      // The client reconnects to it on its next call.
      assert.equal((await c.health()).status, "healthy");
    } finally {
      await again.cleanup();
    }
    await assert.rejects(stat(sock), /ENOENT/);
  } finally {
    c.close();
    await s.cleanup();
    await dir.cleanup();
  }
});
