// Needs the demo models in demo/models (they are in the repository: stories260K.gguf, mnist-8.onnx).
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let root: { dir: string; cleanup: () => Promise<void> };
before(async () => (root = await tempDir()));
after(() => root.cleanup());

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as any };
};
const ids = async (srv: TestServer) => (await getJson(`${srv.url}/models`)).body.models.map((m: { id: string }) => m.id);

/** A server whose models dir is `models` under its own folder (created only when `createModelsDir`). */
async function server(name: string, config: Record<string, unknown> = {}, createModelsDir = false): Promise<TestServer> {
  const dirs = { modelsDir: path.join(root.dir, name, "models"), dataDir: path.join(root.dir, name, "data") };
  const srv = await startTestServer({ dirs, config: { demoModels: true, ...config } });
  // startTestServer creates the models dir; a missing one is the first-run case.
  if (!createModelsDir) await rm(dirs.modelsDir, { recursive: true });
  return srv;
}

/** A white "1" on black, MNIST-style: a thick vertical stroke in the centre. */
const one = Array.from({ length: 28 }, (_, y) => Array.from({ length: 28 }, (_, x) => (y >= 5 && y <= 22 && x >= 13 && x <= 15 ? 1 : 0)));
const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));

test("with no models dir, the demo models are listed (source demo) and both run", async (t) => {
  const srv = await server("first-run");
  t.after(() => srv.close());
  const list = await getJson(`${srv.url}/models`);
  assert.deepEqual(
    list.body.models.map((m: any) => [m.id, m.type, m.source, m.missing]),
    [["mnist-8", "onnx", "demo", false], ["stories260K", "gguf", "demo", false]],
  );
  assert.deepEqual(srv.app.registry.summary(), { count: 2, missing: 0, demo: true, modelsDir: path.join(root.dir, "first-run", "models") });
  assert.equal(srv.app.registry.catalogue.demoActive, true);

  const gen = await postJson(`${srv.url}/inference`, { model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
  assert.equal(gen.status, 200, JSON.stringify(gen.body));
  assert.match(gen.body.choices[0].text, /^, there was a little girl named Lily/);

  const digit = await postJson(`${srv.url}/models/mnist-8/inference`, { inputs: { Input3: [[one]] } });
  assert.equal(digit.status, 200, JSON.stringify(digit.body));
  assert.deepEqual(digit.body.outputs.Plus214_Output_0.shape, [1, 10]);
  assert.equal(argmax(digit.body.outputs.Plus214_Output_0.data[0]), 1);

  // The OpenAI list shows them too; they cannot be unregistered.
  assert.deepEqual((await getJson(`${srv.url}/v1/models`)).body.data.map((m: { id: string }) => m.id), ["mnist-8", "stories260K"]);
  const del = await fetch(`${srv.url}/models/stories260K`, { method: "DELETE" });
  assert.equal(del.status, 400);
});

test("an empty models dir serves the demo models; one with a model of its own does not", async (t) => {
  const empty = await server("empty", {}, true);
  t.after(() => empty.close());
  assert.deepEqual(await ids(empty), ["mnist-8", "stories260K"]);

  const own = path.join(root.dir, "own");
  await mkdir(path.join(own, "models"), { recursive: true });
  await writeTinyLlamaGguf(path.join(own, "models", "tiny.gguf"));
  const srv = await startTestServer({ dirs: { modelsDir: path.join(own, "models"), dataDir: path.join(own, "data") }, config: { demoModels: true } });
  t.after(() => srv.close());
  assert.deepEqual(await ids(srv), ["tiny"]);
  assert.equal(srv.app.registry.summary().demo, false);
  assert.equal((await postJson(`${srv.url}/inference`, { model: "stories260K", prompt: "x" })).body.error.code, "MODEL_NOT_FOUND");
});

test("demoModels false: an empty models dir lists nothing", async (t) => {
  const srv = await server("off", { demoModels: false });
  t.after(() => srv.close());
  assert.deepEqual(await ids(srv), []);
  assert.deepEqual(srv.app.registry.summary(), { count: 0, missing: 0, demo: false, modelsDir: path.join(root.dir, "off", "models") });
});

test("a model dropped in ends the demo at the next scan; a loaded demo model is unloaded and refused", async (t) => {
  const srv = await server("dropped-in", {}, true);
  t.after(() => srv.close());
  const gen = await postJson(`${srv.url}/inference`, { model: "stories260K", prompt: "Once", max_tokens: 2, temperature: 0 });
  assert.equal(gen.status, 200);
  assert.ok(srv.app.registry.getLoaded("stories260K"));

  await writeTinyLlamaGguf(path.join(srv.modelsDir, "mine.gguf"));
  assert.deepEqual(await ids(srv), ["mine"]);
  assert.equal(srv.app.registry.summary().demo, false);
  const refused = await postJson(`${srv.url}/inference`, { model: "stories260K", prompt: "Once", max_tokens: 2 });
  assert.equal(refused.status, 404);
  assert.equal(refused.body.error.code, "MODEL_NOT_FOUND");
  for (let i = 0; i < 50 && srv.app.registry.getLoaded("stories260K"); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(srv.app.registry.getLoaded("stories260K"), undefined, "the demo model left memory");
});
