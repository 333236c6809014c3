// Needs no downloaded model: GGUF files are generated (test/fixtures/gguf-writer.ts) and opened by the
// real llama.cpp in the probe's child process.
import assert from "node:assert/strict";
import { readFile, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { InfernoError } from "../../src/errors/catalogue.js";
import { GgufProbe } from "../../src/runtimes/llama/gguf-probe.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } } as never;

const duplicateToken = () =>
  buildTinyLlamaGguf({
    mutate: (spec) => {
      const tokens = spec.metadata.find(([k]) => k === "tokenizer.ggml.tokens")![2] as { items: string[] };
      tokens.items[300] = tokens.items[301]!;
    },
  });

function isRuntimeRejection(err: unknown, pattern: RegExp): boolean {
  assert.ok(err instanceof InfernoError, String(err));
  assert.equal(err.code, "INVALID_MODEL_FILE");
  assert.equal(err.details?.reason, "runtime_rejected");
  assert.match(err.message, pattern);
  assert.doesNotMatch(err.message, /\/(tmp|home|work)\//, "no paths");
  return true;
}

test("a file that aborts llama.cpp is a coded rejection, remembered across restarts until the file changes", { timeout: 60_000 }, async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const good = path.join(tmp.dir, "good.gguf");
  const bad = path.join(tmp.dir, "bad.gguf");
  await writeFile(good, buildTinyLlamaGguf());
  await writeFile(bad, duplicateToken());

  const probe = new GgufProbe({ dataDir: tmp.dir, log: silent, runtimeVersion: "test" });
  t.after(() => probe.dispose());
  await probe.check(good);
  // Two requests naming the same new file share one probe.
  const both = await Promise.allSettled([probe.check(bad), probe.check(bad)]);
  for (const r of both) assert.ok(r.status === "rejected" && isRuntimeRejection(r.reason, /GGML_ASSERT\(id_to_token\.size\(\) == token_to_id\.size\(\)\)/));
  assert.deepEqual(probe.stats, { probes: 2, aborts: 1 });
  // The probe process died with the file; the next check still works.
  await probe.check(good);
  assert.equal(probe.stats.probes, 2, "a known file is not probed again");

  const stored = JSON.parse(await readFile(path.join(tmp.dir, "model-checks.json"), "utf8")) as { verdicts: Record<string, { ok: boolean }> };
  assert.deepEqual(Object.values(stored.verdicts).map((v) => v.ok).sort(), [false, true]);

  const restarted = new GgufProbe({ dataDir: tmp.dir, log: silent, runtimeVersion: "test" });
  t.after(() => restarted.dispose());
  await assert.rejects(restarted.check(bad), (err) => isRuntimeRejection(err, /GGML_ASSERT/));
  await restarted.check(good);
  assert.equal(restarted.stats.probes, 0, "verdicts survive a restart");

  // A changed file (new mtime) is probed again; so is every file under another llama.cpp version.
  await writeFile(bad, buildTinyLlamaGguf());
  await utimes(bad, new Date(), new Date(Date.now() + 5000));
  await restarted.check(bad);
  assert.equal(restarted.stats.probes, 1);
  const upgraded = new GgufProbe({ dataDir: tmp.dir, log: silent, runtimeVersion: "test-2" });
  t.after(() => upgraded.dispose());
  await upgraded.check(good);
  assert.equal(upgraded.stats.probes, 1);
});

test("errors llama.cpp reports without aborting keep its reason", { timeout: 60_000 }, async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const file = path.join(tmp.dir, "m.gguf");
  await writeFile(file, buildTinyLlamaGguf({ mutate: (spec) => void (spec.tensors = spec.tensors.filter((x) => x.name !== "blk.1.ffn_up.weight")) }));
  const probe = new GgufProbe({ log: silent, runtimeVersion: "test" });
  t.after(() => probe.dispose());
  await assert.rejects(probe.check(file), (err) => isRuntimeRejection(err, /missing tensor 'blk\.1\.ffn_up\.weight'/));
  assert.deepEqual(probe.stats, { probes: 1, aborts: 0 });
});
