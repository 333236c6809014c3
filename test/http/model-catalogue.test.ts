// Needs no external model: tiny llama GGUF and linear-classifier ONNX fixtures are generated at test time.
import assert from "node:assert/strict";
import { copyFile, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, startTestServer } from "../helpers/server.js";

let root: { dir: string; cleanup: () => Promise<void> };
let outside: string;
before(async () => {
  root = await tempDir();
  outside = path.join(root.dir, "outside");
  await mkdir(outside, { recursive: true });
  await writeTinyLlamaGguf(path.join(outside, "template.gguf"));
});
after(() => root.cleanup());

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as any };
};
const dirsOf = (name: string) => ({ modelsDir: path.join(root.dir, name, "models"), dataDir: path.join(root.dir, name, "data") });

test("a.gguf and a.onnx are both listed, under their file names, and each reaches its runtime", async (t) => {
  const srv = await startTestServer({ dirs: dirsOf("same-base") });
  t.after(() => srv.close());
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "a.gguf"));
  await writeFile(path.join(srv.modelsDir, "a.onnx"), linearClassifierOnnx());
  await writeTinyLlamaGguf(path.join(srv.modelsDir, "b.gguf"));
  const list = await getJson(`${srv.url}/models`);
  assert.deepEqual(list.body.models.map((m: any) => [m.id, m.type]), [["a.gguf", "gguf"], ["a.onnx", "onnx"], ["b", "gguf"]]);
  assert.equal((await getJson(`${srv.url}/models/a`)).body.error.code, "MODEL_NOT_FOUND");

  const text = await postJson(`${srv.url}/inference`, { model: "a.gguf", prompt: "hi", max_tokens: 2 });
  assert.equal(text.status, 200, JSON.stringify(text.body));
  assert.equal(srv.app.registry.getLoaded("a.gguf")?.capabilities.includes("text-generation"), true);
  const tensor = await postJson(`${srv.url}/models/a.onnx/inference`, { inputs: { x: [[1, 2, 3, 4]] } });
  assert.equal(tensor.status, 200, JSON.stringify(tensor.body));
  assert.deepEqual(tensor.body.outputs.probs.shape, [1, 3]);
  // The ONNX one is no text model, and the GGUF one takes no tensors: each id reached its own file.
  assert.equal((await postJson(`${srv.url}/inference`, { model: "a.onnx", prompt: "hi" })).status, 400);

  // The pair broken up: the one left goes back to its base name.
  await rename(path.join(srv.modelsDir, "a.onnx"), path.join(srv.modelsDir, "c.onnx"));
  assert.deepEqual((await getJson(`${srv.url}/models`)).body.models.map((m: any) => m.id), ["a", "b", "c"]);
});

test("a registered file that goes missing is listed as missing, refused with 409 MODEL_FILE_MISSING, and comes back", async (t) => {
  const dirs = dirsOf("missing");
  const file = path.join(outside, "mine.gguf");
  await copyFile(path.join(outside, "template.gguf"), file);
  const srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  t.after(() => srv.close());
  assert.equal((await postJson(`${srv.url}/models`, { name: "mine", path: file })).status, 201);
  assert.equal((await postJson(`${srv.url}/inference`, { model: "mine", prompt: "hi", max_tokens: 2 })).status, 200);
  assert.ok(srv.app.registry.getLoaded("mine"));

  await rename(file, `${file}.bak`);
  const list = await getJson(`${srv.url}/models`);
  assert.deepEqual(list.body.models.map((m: any) => [m.id, m.source, m.missing]), [["mine", "registered", true]]);
  const one = await getJson(`${srv.url}/models/mine`);
  assert.equal(one.status, 200);
  assert.equal(one.body.missing, true);
  const refusals: Array<[Promise<{ status: number; body: any }>, string]> = [
    [postJson(`${srv.url}/inference`, { model: "mine", prompt: "hi", max_tokens: 2 }), "MODEL_FILE_MISSING"],
    [postJson(`${srv.url}/models/mine/load`, {}), "MODEL_FILE_MISSING"],
    // OpenAI's envelope: its lower-case code, type conflict_error.
    [postJson(`${srv.url}/v1/completions`, { model: "mine", prompt: "hi", max_tokens: 2 }), "model_file_missing"],
  ];
  for (const [req, code] of refusals) {
    const r = await req;
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error.code, code);
  }
  // Not on the lists clients pick models from.
  assert.deepEqual((await getJson(`${srv.url}/v1/models`)).body.data, []);
  assert.deepEqual((await getJson(`${srv.url}/api/tags`)).body.models, []);
  for (let i = 0; i < 50 && srv.app.registry.getLoaded("mine"); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(srv.app.registry.getLoaded("mine"), undefined, "the loaded model left memory");

  await rename(`${file}.bak`, file);
  assert.equal((await getJson(`${srv.url}/models/mine`)).body.missing, true, "noticed at the next scan, not before");
  assert.equal((await getJson(`${srv.url}/models`)).body.models[0].missing, false);
  assert.equal((await postJson(`${srv.url}/inference`, { model: "mine", prompt: "hi", max_tokens: 2 })).status, 200);
});

test("a file gone since the last scan is noticed by the load; a missing registration survives a restart and can be deleted", async () => {
  const dirs = dirsOf("gone");
  const file = path.join(outside, "gone.gguf");
  await copyFile(path.join(outside, "template.gguf"), file);
  let srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  assert.equal((await postJson(`${srv.url}/models`, { name: "gone", path: file })).status, 201);
  await rename(file, `${file}.bak`);
  const load = await postJson(`${srv.url}/models/gone/load`, {});
  assert.equal(load.status, 409);
  assert.equal(load.body.error.code, "MODEL_FILE_MISSING");
  await srv.close();

  srv = await startTestServer({ dirs, config: { modelRoots: [outside] } });
  const listed = await getJson(`${srv.url}/models`);
  assert.deepEqual(listed.body.models.map((m: any) => [m.id, m.missing]), [["gone", true]]);
  const del = await fetch(`${srv.url}/models/gone`, { method: "DELETE" });
  assert.equal(del.status, 200);
  assert.deepEqual((await getJson(`${srv.url}/models`)).body.models, []);
  await srv.close();
});
