// A JWT proves who its holder is; the role comes from the user store at request time (cached for
// ROLE_TTL_MS), so a demotion or deletion reaches tokens already issued within seconds, over HTTP and on
// open WebSockets. Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { JwtIssuer } from "../../src/auth/jwt.js";
import { ROLE_TTL_MS } from "../../src/auth/user-roles.js";
import { UserStore } from "../../src/auth/users.js";
import { openDatabase } from "../../src/store/database.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import { Conn } from "../helpers/ws-client.js";

const SECRET = "s".repeat(40);
let srv: TestServer;
let users: UserStore;
let issuer: JwtIssuer;
const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
/** An admin-only route: 200 for an admin, 403 for a user, 401 for no valid credential. */
const adminRoute = async (token: string) => (await fetch(`${srv.url}/auth/api-keys`, auth(token))).status;

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: SECRET, rateLimit: false } });
  users = new UserStore(openDatabase(srv.dataDir));
  // The server's own issuer (same secret): a token as it signed it at an earlier login.
  issuer = new JwtIssuer({ secret: SECRET, dataDir: srv.dataDir, expiresIn: "1h" });
});
after(() => srv.cleanup());

async function login(username: string, role: "admin" | "user"): Promise<string> {
  await users.create(username, "correct horse battery", role);
  const res = await postJson(`${srv.url}/auth/login`, { username, password: "correct horse battery" });
  assert.equal(res.status, 200);
  return res.body.token;
}

test("a token's signed role is not trusted: the user's current role is, and a token of no user is refused", async () => {
  await users.create("frank", "correct horse battery", "user");
  const signedAdmin = issuer.sign({ user: "frank", role: "admin" }).token;
  assert.equal(await adminRoute(signedAdmin), 403, "frank is a user now, whatever his token says");
  const ghost = issuer.sign({ user: "ghost", role: "admin" }).token;
  const res = await fetch(`${srv.url}/models`, auth(ghost));
  assert.equal(res.status, 401);
  assert.equal(((await res.json()) as any).error.details.reason, "invalid_credentials");
});

test("a demotion and a deletion reach tokens already issued within ROLE_TTL_MS", async () => {
  const dana = await login("dana", "admin");
  const erin = await login("erin", "admin");
  assert.equal(await adminRoute(dana), 200);
  assert.equal(await adminRoute(erin), 200);
  users.setRole("dana", "user");
  users.delete("erin");
  const changed = Date.now();
  let danaStatus = 200;
  let erinStatus = 200;
  while ((danaStatus === 200 || erinStatus === 200) && Date.now() - changed < ROLE_TTL_MS + 3000) {
    await sleep(100);
    [danaStatus, erinStatus] = [await adminRoute(dana), await adminRoute(erin)];
  }
  const took = Date.now() - changed;
  assert.equal(danaStatus, 403, "demoted: admin routes refuse her token");
  assert.equal(erinStatus, 401, "deleted: his token no longer authenticates");
  assert.ok(took <= ROLE_TTL_MS + 1000, `took ${took} ms`);
  assert.equal((await fetch(`${srv.url}/models`, auth(dana))).status, 200, "a demoted user still works as a user");
  users.setRole("dana", "admin");
});

test("WebSocket: the auth answer shows the current role, and each inference checks the credential again", async () => {
  await users.create("gina", "correct horse battery", "user");
  const ws = await Conn.open(`${srv.url.replace(/^http/, "ws")}/ws`);
  ws.send({ type: "auth", token: issuer.sign({ user: "gina", role: "admin" }).token });
  assert.equal((await ws.next((m) => m.type === "auth")).role, "user");
  ws.ws.close();

  // An API key is read from its row on every check, so a revocation applies at the next inference.
  const keys = new ApiKeyStore(openDatabase(srv.dataDir));
  const key = keys.create({ user: "hal", name: "ws", role: "user" });
  const sock = await Conn.open(`${srv.url.replace(/^http/, "ws")}/ws`, auth(key.key));
  sock.send({ type: "inference", id: "a", model: "tiny", prompt: "hi", max_tokens: 2 });
  assert.equal((await sock.result("a")).end.type, "complete");
  keys.revoke(key.id);
  sock.send({ type: "inference", id: "b", model: "tiny", prompt: "hi", max_tokens: 2 });
  const refused = await sock.next((m) => m.type === "error");
  assert.equal(refused.code, "AUTHENTICATION_FAILED");
  assert.equal(await sock.closed, 4401);
});
