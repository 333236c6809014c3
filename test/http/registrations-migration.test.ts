// Needs no external model: tiny llama GGUF fixtures are generated at test time.
// Registrations of an older Inferno (DATA_DIR/registrations.json) move into the data dir's database.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { openDatabase } from "../../src/store/database.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { startTestServer } from "../helpers/server.js";

let root: { dir: string; cleanup: () => Promise<void> };
let outside: string;
before(async () => {
  root = await tempDir();
  outside = path.join(root.dir, "outside");
  await mkdir(outside, { recursive: true });
  await writeTinyLlamaGguf(path.join(outside, "one.gguf"));
  await writeTinyLlamaGguf(path.join(outside, "two.gguf"));
});
after(() => root.cleanup());

/** What an Inferno before the database wrote (RegistrationStore's JSON, version 1), plus one entry that is no registration. */
const legacyJson = () =>
  JSON.stringify({
    version: 1,
    registrations: [
      { id: "one", name: "one", path: path.join(outside, "one.gguf"), options: { context_size: 128 }, created: 1700000000 },
      { id: "two", name: "two", path: path.join(outside, "two.gguf"), options: {}, created: 1700000001 },
      { id: "../evil", path: "/etc/passwd" },
    ],
  });

const listed = async (url: string) => {
  const body = (await (await fetch(`${url}/models`)).json()) as { models: Array<Record<string, any>> };
  return body.models.map((m) => [m.id, m.source, m.created]);
};
const rowCount = (dataDir: string) => {
  const db = openDatabase(dataDir);
  try {
    return (db.prepare("SELECT count(*) AS n FROM registrations").get() as { n: number }).n;
  } finally {
    db.close();
  }
};

async function start(name: string, files: Record<string, string> = {}) {
  const dirs = { modelsDir: path.join(root.dir, name, "models"), dataDir: path.join(root.dir, name, "data") };
  await mkdir(dirs.dataDir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(dirs.dataDir, file), text);
  return { dirs, srv: await startTestServer({ dirs, config: { modelRoots: [outside] } }) };
}

test("registrations.json is imported once, renamed, and not imported again", async () => {
  const { dirs, srv } = await start("valid", { "registrations.json": legacyJson() });
  const expected = [["one", "registered", 1700000000], ["two", "registered", 1700000001]];
  assert.deepEqual(await listed(srv.url), expected);
  const one = (await (await fetch(`${srv.url}/models/one`)).json()) as { registration_options: Record<string, unknown> };
  assert.deepEqual(one.registration_options, { context_size: 128 });
  await srv.close();
  assert.ok(!existsSync(path.join(dirs.dataDir, "registrations.json")));
  assert.equal(await readFile(path.join(dirs.dataDir, "registrations.json.migrated"), "utf8"), legacyJson(), "kept whole, invalid entry included");
  assert.equal(rowCount(dirs.dataDir), 2);

  // A start that died after the commit and before the rename leaves both: nothing is doubled.
  await copyFile(path.join(dirs.dataDir, "registrations.json.migrated"), path.join(dirs.dataDir, "registrations.json"));
  const again = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  assert.deepEqual(await listed(again.url), expected);
  await again.close();
  assert.equal(rowCount(dirs.dataDir), 2);
  const files = (await readdir(dirs.dataDir)).filter((f) => f.startsWith("registrations"));
  assert.deepEqual(files.sort(), ["registrations.json.migrated", "registrations.json.migrated.1"], "the first copy is not overwritten");

  // And a plain restart changes nothing.
  const third = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  assert.deepEqual(await listed(third.url), expected);
  await third.close();
  assert.equal(rowCount(dirs.dataDir), 2);
});

for (const [name, text] of [
  ["malformed", '{"version":1,"registrations":[{"id":"one",'],
  ["not-a-list", '{"version":1,"registrations":"one"}'],
  ["null", "null"],
] as const) {
  test(`a registrations.json that is not one (${name}) does not stop start-up and is kept as it is`, async () => {
    const { dirs, srv } = await start(`hostile-${name}`, { "registrations.json": text });
    assert.deepEqual(await listed(srv.url), []);
    const health = await fetch(`${srv.url}/health`);
    assert.equal(health.status, 200);
    await srv.close();
    assert.equal(await readFile(path.join(dirs.dataDir, "registrations.json"), "utf8"), text);
    assert.ok(!existsSync(path.join(dirs.dataDir, "registrations.json.migrated")));
    assert.equal(rowCount(dirs.dataDir), 0);
  });
}
