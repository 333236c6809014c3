// A batch survives `kill -9`: the real CLI (dist/src/cli.js) in a child process runs a batch, is
// SIGKILLed mid-batch, is started again on the same data dir, and every item ends with exactly one
// stored result, equal to a fresh greedy run. Uses stories260K.gguf when ../shared/models is there,
// else a tiny generated GGUF (same checks, less realistic text).
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli } from "../helpers/cli.js";
import { realModel, tempDir } from "../helpers/paths.js";

/** `inferno serve` in a child, one batch item at a time; resolves once it listens. */
const serve = (args: string[]) => serveCli(args, { INFERNO_BATCH_CONCURRENCY: "1" });

const json = async (url: string, body?: unknown): Promise<any> => {
  const res = await fetch(url, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return res.json();
};

interface ItemRow {
  item_id: string;
  status: string;
  attempts: number;
  result: string | null;
  finished_ms: number | null;
}

function readItems(dataDir: string, batchId: string): Map<string, ItemRow> {
  const db = new Database(path.join(dataDir, "inferno.db"));
  try {
    const rows = db.prepare<[string], ItemRow>("SELECT item_id, status, attempts, result, finished_ms FROM batch_items WHERE batch_id = ?").all(batchId);
    return new Map(rows.map((r) => [r.item_id, r]));
  } finally {
    db.close();
  }
}

const STORY_STARTS = ["Once upon a time", "Lily went to the park", "The little dog", "Tom had a red ball", "One day, a bird", "Sam and his mom"];

test("SIGKILL mid-batch, restart: every item completes, each result stored exactly once", { timeout: 110_000 }, async (t) => {
  const { dir, cleanup } = await tempDir("inferno-batch-crash-");
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await cleanup();
  });
  const modelsDir = path.join(dir, "models");
  const dataDir = path.join(dir, "data");
  await mkdir(modelsDir, { recursive: true });
  const real = realModel("stories260K.gguf");
  const model = real.skip ? "tiny" : "stories260K";
  if (real.skip) await writeTinyLlamaGguf(path.join(modelsDir, "tiny.gguf"));
  else await copyFile(real.path, path.join(modelsDir, "stories260K.gguf"));
  const args = ["--models-dir", modelsDir, "--data-dir", dataDir, "--threads", "1", "--parallel", "2", "--context-size", "512"];

  const N = 30;
  const params = { temperature: 0, max_tokens: 200 };
  const requests = Array.from({ length: N }, (_, i) => ({ id: `story-${i}`, prompt: `${STORY_STARTS[i % STORY_STARTS.length]} ${i}` }));

  // First run: submit, let some items finish, then kill -9.
  const first = await serve(args);
  children.push(first.child);
  const sub = await json(`${first.url}/batch`, { model, requests, ...params });
  const batchId = sub.batch_id as string;
  assert.match(batchId, /^batch_/);
  for (;;) {
    const s = await json(`${first.url}/batch/${batchId}`);
    assert.ok(s.completed < N, "the batch finished before it could be killed (make the items longer)");
    if (s.completed >= 3) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  first.child.kill("SIGKILL");
  assert.equal((await first.exit).signal, "SIGKILL");

  const atKill = readItems(dataDir, batchId);
  const count = (rows: Map<string, ItemRow>, status: string) => [...rows.values()].filter((r) => r.status === status).length;
  const doneAtKill = count(atKill, "done");
  const runningAtKill = count(atKill, "running");
  assert.equal(atKill.size, N);
  assert.ok(doneAtKill >= 3 && doneAtKill < N, `killed mid-batch (${doneAtKill} of ${N} done)`);
  assert.equal(doneAtKill + runningAtKill + count(atKill, "pending"), N);
  t.diagnostic(`at the kill: ${doneAtKill} done, ${runningAtKill} running, ${N - doneAtKill - runningAtKill} pending`);

  // Second run on the same data dir: the rest runs, nothing finished runs again.
  const second = await serve(args);
  children.push(second.child);
  let status: any;
  for (const end = Date.now() + 60_000; ; ) {
    status = await json(`${second.url}/batch/${batchId}`);
    if (status.status !== "running" && status.status !== "queued") break;
    assert.ok(Date.now() < end, "the batch finishes after the restart");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual({ status: status.status, completed: status.completed, failed: status.failed, total: status.total }, { status: "completed", completed: N, failed: 0, total: N });
  if (runningAtKill > 0) assert.match(second.log(), /interrupted by a restart will run again/);

  const results = (await json(`${second.url}/batch/${batchId}/results`)).results as any[];
  assert.deepEqual(results.map((r) => r.id), requests.map((r) => r.id), "one result per request, in order");
  // Greedy generation is deterministic: every stored result equals a fresh run of its prompt.
  for (const [i, r] of results.entries()) {
    const fresh = await json(`${second.url}/inference`, { model, prompt: requests[i]!.prompt, ...params });
    assert.equal(r.status, "completed");
    assert.equal(r.result.text, fresh.choices[0].text, r.id);
    assert.deepEqual(r.result.usage, fresh.usage, r.id);
  }
  second.child.kill("SIGTERM");
  assert.equal((await second.exit).code, 0);

  const atEnd = readItems(dataDir, batchId);
  assert.equal(count(atEnd, "done"), N, "every item has its result");
  for (const [id, before] of atKill) {
    const now = atEnd.get(id)!;
    assert.ok(now.result !== null, id);
    if (before.status === "done") {
      // Finished before the kill: never run again, its one result untouched.
      assert.deepEqual({ attempts: now.attempts, result: now.result, finished: now.finished_ms }, { attempts: before.attempts, result: before.result, finished: before.finished_ms }, id);
      assert.equal(now.attempts, 1, id);
    } else {
      // Interrupted (claimed once before the kill) or never started: run exactly once after the restart.
      assert.equal(now.attempts, before.attempts + 1, id);
    }
  }
  t.diagnostic(`after the restart: ${N} done; ${runningAtKill} item(s) ran a second time because the kill interrupted them`);
});
