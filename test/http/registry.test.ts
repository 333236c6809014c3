// Needs no external model: tiny llama GGUF fixtures are generated at test time.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { openDatabase } from "../../src/store/database.js";
import { writeTinyLlamaGguf, buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let root: { dir: string; cleanup: () => Promise<void> };
let outside: string;

before(async () => {
  root = await tempDir();
  outside = path.join(root.dir, "outside");
  await mkdir(outside, { recursive: true });
  await writeTinyLlamaGguf(path.join(outside, "elsewhere.gguf"));
  await writeFile(path.join(outside, "notes.txt"), "not a model");
});
after(() => root.cleanup());

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as any };
};
const del = async (url: string) => {
  const res = await fetch(url, { method: "DELETE" });
  return { status: res.status, body: (await res.json()) as any };
};

async function server(name: string, extra: Record<string, unknown> = {}): Promise<TestServer> {
  const dirs = { modelsDir: path.join(root.dir, name, "models"), dataDir: path.join(root.dir, name, "data") };
  return startTestServer({ dirs, config: extra });
}

test("models in the models dir are discovered with the documented fields", async (t) => {
  const srv = await server("discover");
  t.after(() => srv.close());
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny.gguf"));
  await writeFile(path.join(srv.modelsDir, "bad name.gguf"), buildTinyLlamaGguf());
  await writeFile(path.join(srv.modelsDir, "readme.txt"), "x");
  const list = await getJson(`${srv.url}/models`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.models.map((m: { id: string }) => m.id), ["tiny"]);
  const m = list.body.models[0];
  assert.deepEqual(
    { id: m.id, name: m.name, type: m.type, loaded: m.loaded, context_size: m.context_size, capabilities: m.capabilities },
    { id: "tiny", name: "tiny", type: "gguf", loaded: false, context_size: 256, capabilities: ["text-generation", "embeddings"] },
  );
  assert.equal(m.size_bytes, (await readFile(path.join(srv.modelsDir, "tiny.gguf"))).length);
  const one = await getJson(`${srv.url}/models/tiny`);
  assert.equal(one.body.details.architecture, "llama");
  assert.equal((await getJson(`${srv.url}/models/nope`)).body.error.code, "MODEL_NOT_FOUND");
});

test("load, reload with other options, unload; concurrent loads load once", async (t) => {
  const srv = await server("lifecycle");
  t.after(() => srv.close());
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny.gguf"));
  const loads = await Promise.all(Array.from({ length: 5 }, () => postJson(`${srv.url}/models/tiny/load`, {})));
  for (const l of loads) {
    assert.equal(l.status, 200);
    assert.equal(l.body.status, "loaded");
    assert.equal(l.body.model_id, "tiny");
    assert.ok(l.body.memory_usage_bytes > 0);
  }
  assert.equal(new Set(loads.map((l) => l.body.load_time_ms)).size, 1, "one load served every caller");
  const first = srv.app.registry.getLoaded("tiny");
  assert.equal((await getJson(`${srv.url}/health`)).body.models_loaded, 1);

  const reload = await postJson(`${srv.url}/models/tiny/load`, { context_size: 128, parallel: 2 });
  assert.equal(reload.body.context_size, 128);
  assert.notEqual(srv.app.registry.getLoaded("tiny"), first);
  const info = await getJson(`${srv.url}/models/tiny`);
  assert.equal(info.body.loaded, true);
  assert.equal(info.body.context_size, 128);

  const unload = await postJson(`${srv.url}/models/tiny/unload`, {});
  assert.deepEqual(unload.body, { status: "unloaded", model_id: "tiny", was_loaded: true });
  assert.equal((await getJson(`${srv.url}/models/tiny`)).body.loaded, false);

  // A model is loaded on first use.
  const gen = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hi", max_tokens: 2 });
  assert.equal(gen.status, 200);
  assert.equal((await getJson(`${srv.url}/models/tiny`)).body.loaded, true);

  // Options that are not on the allowlist never reach the runtime.
  const bad = await postJson(`${srv.url}/models/tiny/load`, { lora: "/etc/passwd" });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, "INVALID_REQUEST");
});

test("registration by path: allowed roots only, persisted across restarts, deletable", async () => {
  const dirs = { modelsDir: path.join(root.dir, "reg", "models"), dataDir: path.join(root.dir, "reg", "data") };
  let srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  const file = path.join(outside, "elsewhere.gguf");
  const created = await postJson(`${srv.url}/models`, { name: "mine", path: file, options: { context_size: 128 } });
  assert.equal(created.status, 201);
  assert.equal(created.body.id, "mine");
  assert.equal(created.body.source, "registered");
  assert.equal((await postJson(`${srv.url}/models`, { name: "mine", path: file })).body.error.code, "MODEL_EXISTS");
  const gen = await postJson(`${srv.url}/models/mine/inference`, { prompt: "hi", max_tokens: 3, temperature: 0 });
  assert.equal(gen.status, 200);
  assert.equal(srv.app.registry.getLoaded("mine")?.contextSize, 128, "registration options apply");
  await srv.close();
  // Kept in the data dir's database (registrations-migration.test.ts covers an older registrations.json).
  assert.ok(!existsSync(path.join(dirs.dataDir, "registrations.json")));
  const db = openDatabase(dirs.dataDir);
  assert.deepEqual(db.prepare("SELECT id, path FROM registrations").all(), [{ id: "mine", path: file }]);
  db.close();

  srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  const after = await getJson(`${srv.url}/models/mine`);
  assert.equal(after.status, 200, "registration survived the restart");
  assert.equal(after.body.registration_options.context_size, 128);
  const gone = await del(`${srv.url}/models/mine`);
  assert.deepEqual(gone.body, { status: "deleted", model_id: "mine" });
  assert.ok((await readFile(file)).length > 0, "the file itself is never deleted");
  await srv.close();

  srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  assert.equal((await getJson(`${srv.url}/models/mine`)).status, 404, "deletion survived the restart");
  await srv.close();
});

test("path tricks are refused with 403 PATH_NOT_ALLOWED", async (t) => {
  const srv = await server("paths");
  t.after(() => srv.close());
  await symlink(path.join(outside, "elsewhere.gguf"), path.join(srv.modelsDir, "sneaky.gguf"));
  const tries = [
    path.join(outside, "elsewhere.gguf"),
    "../../outside/elsewhere.gguf",
    "sneaky.gguf", // a symlink inside the models dir pointing out of it
    "/etc/passwd",
    "/nonexistent/x.gguf",
  ];
  for (const p of tries) {
    const r = await postJson(`${srv.url}/models`, { name: "x", path: p });
    assert.equal(r.status, 403, p);
    assert.equal(r.body.error.code, "PATH_NOT_ALLOWED", p);
  }
  // The escaping symlink is not discovered either.
  const list = await getJson(`${srv.url}/models`);
  assert.ok(!list.body.models.some((m: { id: string }) => m.id === "sneaky"));
  const badName = await postJson(`${srv.url}/models`, { name: "../x", path: "a.gguf" });
  assert.equal(badName.status, 400);
  const extra = await postJson(`${srv.url}/models`, { name: "x", path: "a.gguf", options: { model_path: "/etc" } });
  assert.equal(extra.status, 400);
});

test("corrupt model files get a coded 422 and the server keeps serving", async (t) => {
  const srv = await server("corrupt", { modelRoots: [outside] });
  t.after(() => srv.close());
  const good = buildTinyLlamaGguf();
  await writeFile(path.join(srv.modelsDir, "truncated.gguf"), good.subarray(0, Math.floor(good.length / 2)));
  await writeFile(path.join(srv.modelsDir, "garbage.gguf"), Buffer.from("this is not a gguf file at all"));
  await writeFile(path.join(srv.modelsDir, "empty.gguf"), Buffer.alloc(0));
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "ok.gguf"));
  for (const id of ["truncated", "garbage", "empty"]) {
    const r = await postJson(`${srv.url}/inference`, { model: id, prompt: "hi", max_tokens: 2 });
    assert.equal(r.status, 422, id);
    assert.equal(r.body.error.code, "INVALID_MODEL_FILE");
    assert.equal(typeof r.body.error.details.reason, "string");
    const load = await postJson(`${srv.url}/models/${id}/load`, {});
    assert.equal(load.body.error.code, "INVALID_MODEL_FILE");
  }
  await writeFile(path.join(outside, "bad.gguf"), Buffer.from("GGUF\x03\x00\x00\x00garbage"));
  const reg = await postJson(`${srv.url}/models`, { name: "bad", path: path.join(outside, "bad.gguf") });
  assert.equal(reg.status, 422);
  const txt = await postJson(`${srv.url}/models`, { name: "txt", path: path.join(outside, "notes.txt") });
  assert.equal(txt.body.error.code, "INVALID_MODEL_FILE");
  // Still healthy and still serving the good model.
  assert.equal((await getJson(`${srv.url}/health`)).body.status, "healthy");
  const ok = await postJson(`${srv.url}/inference`, { model: "ok", prompt: "hi", max_tokens: 2 });
  assert.equal(ok.status, 200);
  const list = await getJson(`${srv.url}/models`);
  assert.equal(list.status, 200);
  assert.equal(list.body.models.find((m: { id: string }) => m.id === "truncated").context_size, null);
});

test("models from the models dir cannot be unregistered; unknown ids are 404", async (t) => {
  const srv = await server("undeletable");
  t.after(() => srv.close());
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "tiny.gguf"));
  const r = await del(`${srv.url}/models/tiny`);
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, "UNSUPPORTED_OPERATION");
  assert.equal((await del(`${srv.url}/models/ghost`)).status, 404);
  assert.equal((await postJson(`${srv.url}/models/ghost/unload`, {})).status, 404);
});

test("the longest valid model id (128 characters) is reachable in every path that names a model", async (t) => {
  const srv = await server("long-id");
  t.after(() => srv.close());
  const id = "m".repeat(128);
  await writeTinyLlamaGguf(path.join(srv.modelsDir, `${id}.gguf`));
  assert.equal((await getJson(`${srv.url}/models/${id}`)).status, 200);
  assert.equal((await getJson(`${srv.url}/v1/models/${id}`)).status, 200);
  assert.equal((await postJson(`${srv.url}/models/${id}/inference`, { prompt: "hi", max_tokens: 2 })).status, 200);
  assert.equal((await postJson(`${srv.url}/models/${id}/unload`, {})).status, 200);
});
