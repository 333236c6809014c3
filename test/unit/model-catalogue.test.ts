// Needs no model: the catalogue only lists files here (no runtime opens them).
import assert from "node:assert/strict";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import type { Logger } from "../../src/core/logger.js";
import { importLegacyRegistrations } from "../../src/registry/legacy-registrations.js";
import { ModelCatalogue } from "../../src/registry/model-catalogue.js";
import { RegistrationStore } from "../../src/registry/registration-store.js";
import { tempDir } from "../helpers/paths.js";

let root: { dir: string; cleanup: () => Promise<void> };
before(async () => (root = await tempDir()));
after(() => root.cleanup());

function recordingLog() {
  const lines: Array<{ level: string; obj: unknown; msg: string | undefined }> = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg: typeof obj === "string" ? obj : msg });
  const log: Logger = { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
  return { log, lines, at: (level: string) => lines.filter((l) => l.level === level) };
}

test("files sharing a base name are warned about once per change, naming both files", async () => {
  const modelsDir = path.join(root.dir, "shared-base");
  const { log, at } = recordingLog();
  const catalogue = new ModelCatalogue({ modelsDir, dataDir: root.dir, db: new Database(":memory:"), modelRoots: [], runtimes: {}, log });
  await mkdir(modelsDir);
  await writeFile(path.join(modelsDir, "a.gguf"), "x");
  await writeFile(path.join(modelsDir, "a.onnx"), "x");
  await catalogue.init();
  await catalogue.scan();
  await catalogue.scan();
  const warned = () => at("warn").filter((l) => l.msg?.includes("share the base name"));
  assert.equal(warned().length, 1);
  assert.match(warned()[0]!.msg!, /a\.gguf and a\.onnx/);
  assert.deepEqual(catalogue.list().map((m) => m.id), ["a.gguf", "a.onnx"]);

  await rename(path.join(modelsDir, "a.onnx"), path.join(modelsDir, "b.onnx"));
  await catalogue.scan();
  assert.deepEqual(catalogue.list().map((m) => m.id), ["a", "b"]);
  await writeFile(path.join(modelsDir, "a.onnx"), "x");
  await catalogue.scan();
  assert.equal(warned().length, 2, "the pair is back: warned again");
});

test("scans asked for during a scan run after it, as one", async () => {
  const modelsDir = path.join(root.dir, "coalesce");
  const catalogue = new ModelCatalogue({ modelsDir, dataDir: root.dir, db: new Database(":memory:"), modelRoots: [], runtimes: {}, log: recordingLog().log });
  await catalogue.init();
  await mkdir(modelsDir);
  const first = catalogue.scan();
  const [second, third] = [catalogue.scan(), catalogue.scan()];
  assert.notEqual(first, second);
  assert.equal(second, third);
  await Promise.all([first, second]);
});

test("a registrations.json that is not JSON is an error log, never a throw; it stays in place", async () => {
  const dataDir = path.join(root.dir, "bad-json");
  await mkdir(dataDir);
  await writeFile(path.join(dataDir, "registrations.json"), "{ not json");
  const { log, at } = recordingLog();
  const store = new RegistrationStore(new Database(":memory:"));
  await importLegacyRegistrations(store, dataDir, log);
  assert.equal(at("error").length, 1);
  assert.match(at("error")[0]!.msg!, /not valid JSON/);
  assert.deepEqual(store.list(), []);
  assert.equal(await readFile(path.join(dataDir, "registrations.json"), "utf8"), "{ not json");
});
