// `inferno security ...` records what it changes in the data dir's audit log, as the actor "cli" with the
// operating-system user who ran it; a server on the same data dir lists those events at GET /audit.
// Built CLI in a child process; needs no model.
import assert from "node:assert/strict";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { AuditLog } from "../../src/audit/audit-log.js";
import { openDatabase } from "../../src/store/database.js";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";
import { startTestServer } from "../helpers/server.js";

let work: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: work, cleanup } = await tempDir("inferno-security-audit-"));
});
after(() => cleanup());

test("key create and revoke, user create, set-role and delete are audited by the CLI; lists and failures are not", async () => {
  const dataDir = path.join(work, "data");
  const cli = async (args: string[], stdin = "") => {
    const r = await runCli(["security", ...args, "--data-dir", dataDir], { cwd: work, stdin });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const key = JSON.parse(await cli(["api-key", "create", "--user", "ops", "--name", "deploy", "--role", "admin", "--json"])) as { id: string; key: string };
  await cli(["api-key", "list"]);
  await cli(["api-key", "revoke", key.id]);
  await cli(["user", "create", "--username", "erin", "--password", "-"], "correct horse battery staple\n");
  await cli(["user", "set-role", "erin", "--role", "admin"]);
  await cli(["user", "delete", "erin"]);
  const missing = await runCli(["security", "user", "delete", "nobody", "--data-dir", dataDir], { cwd: work });
  assert.notEqual(missing.code, 0);

  const db = openDatabase(dataDir);
  let events;
  try {
    events = new AuditLog(db, "reader").query({ limit: 100 });
  } finally {
    db.close();
  }
  assert.deepEqual(events.map((e) => [e.type, e.target]), [
    ["key.create", key.id], ["key.revoke", key.id], ["user.create", "erin"], ["user.role", "erin"], ["user.delete", "erin"],
  ]);
  for (const e of events) {
    assert.deepEqual([e.actor, e.transport, e.source, e.actor_role], ["cli", "cli", "cli", null]);
    assert.equal(e.details.os_user, os.userInfo().username);
  }
  assert.deepEqual(events[3]!.details, { role: "admin", previous_role: "user", os_user: os.userInfo().username });
  const text = JSON.stringify(events);
  assert.ok(!text.includes("correct horse") && !text.includes(key.key.slice(17)), "no password or key secret recorded");

  // A server on the same data dir lists them beside its own.
  const srv = await startTestServer({ dirs: { modelsDir: path.join(work, "models"), dataDir } });
  try {
    const res = await srv.app.inject({ method: "GET", url: "/audit?actor=cli" });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().events.length, 5);
  } finally {
    await srv.close();
  }
});
