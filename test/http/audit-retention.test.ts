// Audit retention through server restarts on one data dir: events older than auditRetentionDays go at
// start (recorded as audit.prune by system); 0 keeps everything. Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { openDatabase } from "../../src/store/database.js";
import { startTestServer } from "../helpers/server.js";

const DAY = 86_400_000;

function insertAged(dataDir: string, daysAgo: number[]): void {
  const db = openDatabase(dataDir);
  try {
    const insert = db.prepare("INSERT INTO audit_events (ts_ms, type, actor, transport, target, replica) VALUES (?, 'key.create', 'cli', 'cli', ?, 'old')");
    for (const d of daysAgo) insert.run(Date.now() - d * DAY, `aged-${d}`);
  } finally {
    db.close();
  }
}

test("events past auditRetentionDays are pruned at start and the pruning is itself recorded; 0 keeps them", async (t) => {
  const first = await startTestServer({ config: { auditRetentionDays: 0 } });
  t.after(() => first.cleanup());
  const dirs = { modelsDir: first.modelsDir, dataDir: first.dataDir };
  await first.close();
  insertAged(dirs.dataDir, [400, 100, 10]);

  const keep = await startTestServer({ dirs, config: { auditRetentionDays: 0 } });
  const aged = () => keep.app.audit.query({ limit: 100 }).filter((e) => e.target?.startsWith("aged-")).map((e) => e.target);
  assert.deepEqual(aged(), ["aged-400", "aged-100", "aged-10"], "0 keeps everything");
  await keep.close();

  const pruned = await startTestServer({ dirs, config: { auditRetentionDays: 30 } });
  try {
    const events = pruned.app.audit.query({ limit: 100 });
    assert.deepEqual(events.filter((e) => e.target?.startsWith("aged-")).map((e) => e.target), ["aged-10"]);
    const prune = events.filter((e) => e.type === "audit.prune");
    assert.equal(prune.length, 1);
    assert.deepEqual([prune[0]!.actor, prune[0]!.details], ["system", { removed: 2, retention_days: 30 }]);
    // Ids keep growing after a prune (AUTOINCREMENT): a cursor never sees an id twice.
    const ids = events.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(events.filter((e) => e.type === "config.startup").length, 3, "one start-up record per start");
  } finally {
    await pruned.close();
  }
});

test("a bad auditRetentionDays fails at start with the key's name", async () => {
  await assert.rejects(startTestServer({ config: { auditRetentionDays: -1 } }), /auditRetentionDays/);
  await assert.rejects(startTestServer({ config: { auditRetentionDays: "ninety" as unknown as number } }), /auditRetentionDays/);
});
