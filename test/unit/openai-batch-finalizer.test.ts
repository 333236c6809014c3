// Ending OpenAI batches without a server or a model: expiry, output and error files, and what a crash
// leaves behind (bytes with no row, a batch ended but not finalized) are put right at the next start.
import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import type Database from "better-sqlite3";
import { BatchStore } from "../../src/batch/batch-store.js";
import type { BatchWorker } from "../../src/batch/batch-worker.js";
import { OpenaiBatchFinalizer } from "../../src/batch/openai-batch-finalizer.js";
import { OpenaiBatchStore } from "../../src/batch/openai-batch-store.js";
import { FileStore } from "../../src/files/file-store.js";
import { openDatabase } from "../../src/store/database.js";
import { tempDir } from "../helpers/paths.js";

let root: string;
let cleanup: () => Promise<void>;
let count = 0;
const dbs: Database.Database[] = [];
const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

before(async () => {
  ({ dir: root, cleanup } = await tempDir("inferno-openai-batch-"));
});
after(async () => {
  for (const db of dbs) if (db.open) db.close();
  await cleanup();
});

/** A data dir with the stores, a finalizer, and a worker stand-in that records cancels. */
function setup(dataDir = path.join(root, `d${++count}`)) {
  const db = openDatabase(dataDir);
  dbs.push(db);
  const store = new BatchStore(db);
  const batches = new OpenaiBatchStore(db);
  const files = new FileStore(db, path.join(dataDir, "files"));
  const cancelled: string[] = [];
  const worker = { settled: async () => {}, cancel: (id: string) => cancelled.push(id) } as unknown as BatchWorker;
  const finalizer = new OpenaiBatchFinalizer({ db, store, batches, files, worker, log: silent });
  const create = (n: number, now: number) => {
    const items = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, endpoint: "/v1/embeddings", model: "m", body: { model: "m", input: `x${i}` } }));
    const b = store.create({ model: "m", params: {}, owner: "anonymous", items }, now);
    batches.insert({ id: b.id, endpoint: "/v1/embeddings", inputFileId: "file-x", completionWindow: "24h", metadata: null, expiresMs: now + 1000 });
    return b.id;
  };
  return { dataDir, db, store, batches, files, finalizer, cancelled, create };
}

async function fileLines(files: FileStore, id: string | null): Promise<any[]> {
  assert.ok(id);
  return (await files.read(id)).toString().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

it("an overdue batch expires: done items in the output file, the rest batch_expired in the error file", async () => {
  const { store, batches, files, finalizer, cancelled, create } = setup();
  const id = create(3, 1_000);
  assert.ok(store.claim(id, "r0"));
  store.complete(id, "r0", { object: "list", data: [], usage: { prompt_tokens: 2, total_tokens: 2 } });
  assert.ok(store.claim(id, "r1"));
  finalizer.sweep(1_500);
  assert.equal(batches.get(id)!.expiredMs, null, "not overdue yet");
  finalizer.sweep(2_000);
  assert.deepEqual(cancelled, [id]);
  const b0 = batches.get(id)!;
  assert.equal(b0.engineStatus, "cancelled");
  assert.equal(b0.expiredMs, 2_000);
  await finalizer.stop();
  const b = batches.get(id)!;
  assert.ok(b.finalizedMs !== null);
  assert.deepEqual(b.usage, { input_tokens: 2, output_tokens: 0, total_tokens: 2 });
  const out = await fileLines(files, b.outputFileId);
  assert.deepEqual(out.map((l) => [l.custom_id, l.response.status_code, l.error]), [["r0", 200, null]]);
  const errors = await fileLines(files, b.errorFileId);
  assert.deepEqual(errors.map((l) => [l.custom_id, l.error.code, l.response]), [["r1", "batch_expired", null], ["r2", "batch_expired", null]]);
  assert.equal(files.get(b.outputFileId!)!.purpose, "batch_output");
  assert.equal(files.get(b.errorFileId!)!.bytes, (await files.read(b.errorFileId!)).length);
});

it("finalizes once however often it is asked; a failed item's error file line has OpenAI's error body", async () => {
  const { store, batches, finalizer, files, create } = setup();
  const id = create(1, Date.now());
  store.claim(id, "r0");
  store.fail(id, "r0", { code: "CONTEXT_LENGTH_EXCEEDED", message: "too long" });
  await Promise.all([finalizer.finalize(id), finalizer.finalize(id)]);
  await finalizer.finalize(id);
  const b = batches.get(id)!;
  assert.equal(b.outputFileId, null, "no output file without a success");
  const [line] = await fileLines(files, b.errorFileId);
  assert.deepEqual(line.response.body.error, { message: "too long", type: "invalid_request_error", param: null, code: "context_length_exceeded" });
  assert.equal(line.response.status_code, 400);
  assert.equal(files.list({ owner: undefined, limit: 10, order: "asc" }).length, 1);
});

it("after a crash: orphaned bytes are swept, and a batch that ended unfinalized is finalized at the next start", async () => {
  const first = setup();
  const id = first.create(1, Date.now());
  first.store.claim(id, "r0");
  first.store.complete(id, "r0", { object: "list", data: [], usage: { prompt_tokens: 1, total_tokens: 1 } });
  // As if the process died while writing: a partial file and a renamed one whose row never committed.
  await writeFile(path.join(first.dataDir, "files", ".file-abc.part"), "partial");
  await writeFile(path.join(first.dataDir, "files", "file-abc"), "orphan");
  first.db.close();

  const second = setup(first.dataDir);
  assert.equal(second.files.sweep(), 2);
  assert.deepEqual(await readdir(path.join(first.dataDir, "files")), []);
  assert.equal(second.batches.get(id)!.finalizedMs, null);
  second.finalizer.sweep();
  await second.finalizer.stop();
  const b = second.batches.get(id)!;
  assert.ok(b.finalizedMs !== null);
  assert.equal((await fileLines(second.files, b.outputFileId)).length, 1);
});
