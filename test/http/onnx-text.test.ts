// ONNX text models: an .onnx with a Hugging Face tokenizer.json beside it embeds (a sentence encoder) or
// reranks (a cross-encoder) on the same routes as GGUF models. The models and the tokenizer are generated
// here (random weights, a WordPiece vocabulary); every expected vector and score is computed in this file.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import { textEncoderForward, textEncoderOnnx, textEncoderWeights } from "../fixtures/onnx-writer.js";
import { WORDPIECE_WORDS, wordPieceTokenizerJson } from "../fixtures/tokenizer-json.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import { tempDir } from "../helpers/paths.js";

const weights = textEncoderWeights(WORDPIECE_WORDS.length);
const tokenizer = Buffer.from(JSON.stringify(wordPieceTokenizerJson()));
const id = (w: string) => WORDPIECE_WORDS.indexOf(w);
const CLS = id("[CLS]");
const SEP = id("[SEP]");

let srv: TestServer;
let repo: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  // The Hugging Face layout, registered by path: onnx/model.onnx, tokenizer.json and 1_Pooling/config.json at the root.
  repo = await tempDir("inferno-hf-repo-");
  await mkdir(path.join(repo.dir, "onnx"));
  await mkdir(path.join(repo.dir, "1_Pooling"));
  await writeFile(path.join(repo.dir, "onnx", "model.onnx"), textEncoderOnnx(weights));
  await writeFile(path.join(repo.dir, "tokenizer.json"), tokenizer);
  await writeFile(path.join(repo.dir, "1_Pooling", "config.json"), JSON.stringify({ pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }));
  srv = await startTestServer({
    tinyModels: ["tiny"],
    files: {
      "encoder.onnx": textEncoderOnnx(weights),
      "encoder.tokenizer.json": tokenizer,
      "cross.onnx": textEncoderOnnx(weights, true),
      "cross.tokenizer.json": tokenizer,
      "bare.onnx": textEncoderOnnx(weights),
      "broken.onnx": textEncoderOnnx(weights),
      "broken.tokenizer.json": Buffer.from("{not json"),
    },
    config: { modelRoots: [repo.dir] },
  });
});
after(async () => {
  await srv.cleanup();
  await repo.cleanup();
});

const unit = (v: number[]) => {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
};
const meanPooled = (ids: number[]) => {
  const rows = textEncoderForward(weights, ids);
  return unit(rows[0]!.map((_, k) => rows.reduce((s, r) => s + r[k]!, 0) / rows.length));
};
const clsPooled = (ids: number[]) => unit(textEncoderForward(weights, ids)[0]!);
const pairScore = (ids: number[], types: number[]) => {
  const cls = textEncoderForward(weights, ids, types)[0]!;
  return 1 / (1 + Math.exp(-cls.reduce((s, x, k) => s + x * weights.classifier[k]!, 0)));
};
function close(a: number[], b: number[], what: string) {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-5, `${what}[${i}]: ${x} vs ${b[i]}`));
}
const get = async (p: string) => (await fetch(`${srv.url}${p}`)).json() as Promise<any>;

test("an ONNX model with a tokenizer beside it is a text encoder; without one, a tensor model", async () => {
  const models = (await get("/models")).models as Array<{ id: string; capabilities: string[] }>;
  const caps = (m: string) => models.find((x) => x.id === m)!.capabilities;
  assert.deepEqual(caps("encoder"), ["tensor-inference", "embeddings"]);
  assert.deepEqual(caps("cross"), ["tensor-inference", "reranking"]);
  assert.deepEqual(caps("bare"), ["tensor-inference"]);
});

test("embeddings: tokenized as BERT does, mean-pooled over each input's own tokens, unit length, on every route", async () => {
  const texts = ["Hello world", "once upon a time the panda sat on the mat.", "pandas?"];
  const expectedIds = [
    [CLS, id("hello"), id("world"), SEP],
    [CLS, id("once"), id("upon"), id("a"), id("time"), id("the"), id("panda"), id("sat"), id("on"), id("the"), id("mat"), id("."), SEP],
    [CLS, id("panda"), id("##s"), id("?"), SEP],
  ];
  const r = await postJson(`${srv.url}/v1/embeddings`, { model: "encoder", input: texts });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.usage.prompt_tokens, expectedIds.reduce((n, ids) => n + ids.length, 0));
  r.body.data.forEach((d: { embedding: number[] }, i: number) => close(d.embedding, meanPooled(expectedIds[i]!), `input ${i} (padded in a batch of 3)`));
  // Alone, without padding, the same vector.
  close((await postJson(`${srv.url}/v1/embeddings`, { model: "encoder", input: texts[1] })).body.data[0].embedding, meanPooled(expectedIds[1]!), "alone");
  const ollama = await new Ollama({ host: srv.url }).embed({ model: "encoder", input: texts[0]! });
  close(ollama.embeddings[0]!, meanPooled(expectedIds[0]!), "ollama");
  close((await postJson(`${srv.url}/embeddings`, { model: "encoder", input: expectedIds[2] })).body.data[0].embedding, meanPooled(expectedIds[2]!), "token ids");
  const cut = await postJson(`${srv.url}/v1/embeddings`, { model: "encoder", input: texts[0], dimensions: 3 });
  close(cut.body.data[0].embedding, unit(meanPooled(expectedIds[0]!).slice(0, 3)), "dimensions");
  const bad = await postJson(`${srv.url}/embeddings`, { model: "encoder", input: [[CLS, 9999, SEP]] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /token id 9999 is not in the vocabulary/);
});

test("the Hugging Face layout: onnx/model.onnx with tokenizer.json and 1_Pooling (CLS) at the root; pooling can be chosen at load", async () => {
  const reg = await postJson(`${srv.url}/models`, { name: "hf", path: path.join(repo.dir, "onnx", "model.onnx") });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const ids = [CLS, id("hello"), id("world"), SEP];
  close((await postJson(`${srv.url}/v1/embeddings`, { model: "hf", input: "hello world" })).body.data[0].embedding, clsPooled(ids), "cls pooling");
  assert.equal((await postJson(`${srv.url}/models/hf/load`, { pooling: "mean" })).status, 200);
  close((await postJson(`${srv.url}/v1/embeddings`, { model: "hf", input: "hello world" })).body.data[0].embedding, meanPooled(ids), "mean by option");
  assert.equal((await postJson(`${srv.url}/models/tiny/load`, { pooling: "mean" })).status, 400, "GGUF models take no pooling option");
});

test("reranking on a cross-encoder: the pair as BERT encodes it, the head's sigmoid, best first", async () => {
  const query = "what eats bamboo?";
  const documents = ["the cat sat on the mat.", "a panda eats bamboo", "hello"];
  const q = [id("what"), id("eats"), id("bamboo"), id("?")];
  const docIds = [
    [id("the"), id("cat"), id("sat"), id("on"), id("the"), id("mat"), id(".")],
    [id("a"), id("panda"), id("eats"), id("bamboo")],
    [id("hello")],
  ];
  const expected = docIds.map((d) => pairScore([CLS, ...q, SEP, ...d, SEP], [0, ...q.map(() => 0), 0, ...d.map(() => 1), 1]));
  const r = await postJson(`${srv.url}/v1/rerank`, { model: "cross", query, documents, return_documents: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (const x of r.body.results as Array<{ index: number; relevance_score: number; document: { text: string } }>) {
    assert.ok(Math.abs(x.relevance_score - expected[x.index]!) < 1e-5, `document ${x.index}`);
    assert.equal(x.document.text, documents[x.index]);
  }
  const order = expected.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
  assert.deepEqual(r.body.results.map((x: { index: number }) => x.index), order);
  assert.equal(r.body.usage.prompt_tokens, docIds.reduce((n, d) => n + q.length + d.length + 3, 0));
});

test("each text model refuses what it cannot do; the tensor route still takes raw tensors; a bad tokenizer fails the load", async () => {
  const rr = await postJson(`${srv.url}/v1/rerank`, { model: "encoder", query: "hi", documents: ["a"] });
  assert.equal(rr.status, 400);
  assert.match(rr.body.error.message, /its capabilities: tensor-inference, embeddings/);
  const em = await postJson(`${srv.url}/v1/embeddings`, { model: "cross", input: "hi" });
  assert.equal(em.status, 400);
  assert.match(em.body.error.message, /its capabilities: tensor-inference, reranking/);
  const none = await postJson(`${srv.url}/v1/embeddings`, { model: "bare", input: "hi" });
  assert.match(none.body.error.message, /its capabilities: tensor-inference$/);

  const ids = [CLS, id("hello"), SEP];
  const tensor = await postJson(`${srv.url}/v2/models/encoder/infer`, {
    inputs: ["input_ids", "attention_mask", "token_type_ids"].map((name, k) => ({
      name, shape: [1, 3], datatype: "INT64", data: k === 0 ? ids : k === 1 ? [1, 1, 1] : [0, 0, 0],
    })),
  });
  assert.equal(tensor.status, 200, JSON.stringify(tensor.body));
  const out = tensor.body.outputs.find((o: { name: string }) => o.name === "last_hidden_state");
  assert.deepEqual(out.shape, [1, 3, weights.hidden]);
  close(out.data.slice(0, weights.hidden), textEncoderForward(weights, ids)[0]!, "first token vector");

  const broken = await postJson(`${srv.url}/v1/embeddings`, { model: "broken", input: "hi" });
  assert.equal(broken.status, 422, JSON.stringify(broken.body));
  assert.equal(broken.body.error.code, "invalid_model_file");
  assert.match(broken.body.error.message, /tokenizer\.json is not valid/);
  assert.equal((await postJson(`${srv.url}/v1/embeddings`, { model: "encoder", input: "hi" })).status, 200, "still serving");
});
