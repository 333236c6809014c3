// IPC through its real socket: `hello` answers with api_version and refuses another major; load and
// unload of the real mnist-8.onnx (demo/models) are audited with the principal, a failed hello as
// auth.failure with the credential's id only.
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { connect, InfernoIpcError } from "../../src/client/index.js";
import { openDatabase } from "../../src/store/database.js";
import { repoRoot, tempDir } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MNIST = path.join(repoRoot, "demo/models/mnist-8.onnx");
let srv: TestServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let socketPath: string;
let adminKey: string;

before(async () => {
  tmp = await tempDir("inferno-ipc-audit-");
  socketPath = path.join(tmp.dir, "s.sock");
  srv = await startTestServer({ models: { mnist: MNIST }, config: { auth: true, rateLimit: false, jwtSecret: "s".repeat(40), ipcSocket: socketPath } });
  adminKey = new ApiKeyStore(openDatabase(srv.dataDir)).create({ user: "root", name: "admin", role: "admin" }).key;
});
after(async () => {
  await srv.cleanup();
  await tmp.cleanup();
});

/** Sends one frame on a fresh connection; resolves with the first answer and whether the server closed. */
function exchange(message: object): Promise<{ frame: any; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(socketPath);
    let buffer = Buffer.alloc(0);
    let frame: any;
    socket.on("connect", () => {
      const body = Buffer.from(encode(message));
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length);
      socket.write(Buffer.concat([head, body]));
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (frame === undefined && buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
        frame = decode(buffer.subarray(4, 4 + buffer.readUInt32BE(0)));
        // Closed by the server soon after a refusal; otherwise the test closes it.
        setTimeout(() => (socket.destroyed ? undefined : (socket.destroy(), resolve({ frame, closed: false }))), 300);
      }
    });
    socket.on("close", () => (frame === undefined ? reject(new Error("closed without a frame")) : resolve({ frame, closed: true })));
    socket.on("error", () => undefined);
  });
}

test("hello answers with api_version 1.0; asking for 1.x is served, another major is refused and the connection closed", async () => {
  const ok = await exchange({ id: 1, op: "hello", version: 1, token: adminKey, api_version: "1.2" });
  assert.equal(ok.frame.id, 1);
  assert.equal(ok.frame.result.api_version, "1.0");
  assert.equal(ok.frame.result.role, "admin");
  for (const v of ["2.0", "one"]) {
    const refused = await exchange({ id: 7, op: "hello", version: 1, token: adminKey, api_version: v });
    assert.equal(refused.frame.id, 7);
    assert.equal(refused.frame.error.code, "UNSUPPORTED_API_VERSION", v);
    assert.equal(refused.closed, true, v);
  }
  const wrongType = await exchange({ id: 8, op: "hello", api_version: 2 });
  assert.equal(wrongType.frame.error.code, "INVALID_REQUEST");
});

test("load and unload over IPC are audited with the principal; a failed hello as auth.failure", async () => {
  const admin = await connect(socketPath, { token: adminKey });
  try {
    assert.equal((await admin.load("mnist")).status, "loaded");
    assert.equal((await admin.unload("mnist")).was_loaded, true);
  } finally {
    admin.close();
  }
  const forged = `inf_IPCIPCIPCIPC_${"w".repeat(43)}`;
  await assert.rejects(connect(socketPath, { token: forged }), (e: InfernoIpcError) => e.code === "AUTHENTICATION_FAILED");

  srv.app.audit.flush();
  const events = srv.app.audit.query({ limit: 1000 }).filter((e) => e.transport === "ipc");
  assert.deepEqual(events.filter((e) => e.type.startsWith("model.")).map((e) => [e.type, e.target, e.actor, e.source]), [
    ["model.load", "mnist", "root", "ipc"],
    ["model.unload", "mnist", "root", "ipc"],
  ]);
  const failed = events.filter((e) => e.type === "auth.failure");
  assert.deepEqual(failed.map((e) => [e.credential, e.target, e.details.reason]), [["api-key:IPCIPCIPCIPC", "hello", "invalid_credentials"]]);
  assert.ok(!JSON.stringify(events).includes("w".repeat(43)));
});
