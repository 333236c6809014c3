// Reranking through `/v1/rerank`, its aliases and the native `/rerank`, on a tiny Qwen3-shaped reranker
// generated here (rank pooling and a two-label classification head, random weights). The reference is
// node-llama-cpp's own ranking context, opened on the same file in this process.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, type LlamaRankingContext } from "node-llama-cpp";
import { TINY_RERANKER, writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let llama: Llama;
let reference: LlamaRankingContext;

const documents = ["once upon a time", "hello world", "the time is it", "a", "you and the world"];

before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"] });
  const file = path.join(srv.modelsDir, "ranker.gguf");
  await writeTinyLlamaGguf(file, TINY_RERANKER);
  llama = await getLlama({ gpu: false });
  reference = await (await llama.loadModel({ modelPath: file })).createRankingContext({ contextSize: 256 });
});
after(async () => {
  await llama?.dispose();
  await srv.cleanup();
});

const rerank = (route: string, body: Record<string, unknown>) => postJson(`${srv.url}${route}`, { model: "ranker", ...body });
type Result = { index: number; relevance_score: number; document?: { text: string } };

test("scores are the model's, best first, on /v1/rerank, /v1/reranking and /rerank alike", async () => {
  for (const query of ["hello", "once upon"]) {
    const expected = await reference.rankAll(query, documents);
    const r = await rerank("/v1/rerank", { query, documents });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.object, "list");
    assert.equal(r.body.model, "ranker");
    assert.match(r.body.id, /^rerank-/);
    const results = r.body.results as Result[];
    assert.deepEqual(results.map((x) => x.index).sort(), documents.map((_, i) => i), "every document once");
    for (const { index, relevance_score } of results) {
      assert.ok(Math.abs(relevance_score - expected[index]!) < 1e-6, `document ${index}: ${relevance_score} vs ${expected[index]}`);
      assert.ok(relevance_score > 0 && relevance_score < 1);
    }
    for (let i = 1; i < results.length; i++) assert.ok(results[i - 1]!.relevance_score >= results[i]!.relevance_score, "sorted by score");
    assert.ok(r.body.usage.prompt_tokens > 0);
    assert.equal(r.body.usage.total_tokens, r.body.usage.prompt_tokens);
    assert.ok(results.every((x) => x.document === undefined), "no documents unless asked");
    for (const alias of ["/v1/reranking", "/rerank"]) {
      const other = await rerank(alias, { query, documents });
      assert.deepEqual(other.body.results, results, alias);
    }
  }
  const a = (await rerank("/rerank", { query: "hello", documents })).body.results as Result[];
  const b = (await rerank("/rerank", { query: "once upon", documents })).body.results as Result[];
  assert.notDeepEqual(a.map((x) => x.relevance_score), b.map((x) => x.relevance_score), "the scores change with the query");
});

test("top_n keeps the best, return_documents echoes each document as {text}, whichever form it came in", async () => {
  const mixed = documents.map((d, i) => (i % 2 ? { text: d, id: `d${i}` } : d));
  const all = (await rerank("/v1/rerank", { query: "the time", documents: mixed })).body.results as Result[];
  const top = await rerank("/v1/rerank", { query: "the time", documents: mixed, top_n: 2, return_documents: true });
  assert.equal(top.status, 200);
  const best = top.body.results as Result[];
  assert.deepEqual(best.map((x) => x.index), all.slice(0, 2).map((x) => x.index));
  for (const x of best) assert.deepEqual(x.document, { text: documents[x.index] });
  const more = await rerank("/v1/rerank", { query: "the time", documents, top_n: 50 });
  assert.equal(more.body.results.length, documents.length, "top_n above the count returns them all");
});

test("bad requests get coded errors in each route's envelope; the model survives them", async () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ query: "", documents }, "query"],
    [{ query: "hi", documents: [] }, "documents"],
    [{ query: "hi", documents: [1, 2] }, "documents"],
    [{ query: "hi", documents: [{ txt: "a" }] }, "documents"],
    [{ query: "hi", documents, top_n: 0 }, "top_n"],
    [{ query: "hi", documents: Array(1001).fill("a") }, "documents"],
  ];
  for (const [body, param] of cases) {
    const openai = await rerank("/v1/rerank", body);
    assert.equal(openai.status, 400, JSON.stringify(body).slice(0, 80));
    assert.equal(openai.body.error.type, "invalid_request_error");
    assert.match(openai.body.error.param ?? openai.body.error.message, new RegExp(param));
    const native = await rerank("/rerank", body);
    assert.equal(native.status, 400);
    assert.equal(native.body.error.code, "INVALID_REQUEST");
  }
  const long = await rerank("/v1/rerank", { query: "hello", documents: ["ok", "the ".repeat(300)] });
  assert.equal(long.status, 400);
  assert.equal(long.body.error.code, "context_length_exceeded");
  assert.match(long.body.error.message, /document 1 is \d+ tokens/);
  const missing = await postJson(`${srv.url}/v1/rerank`, { model: "nope", query: "hi", documents });
  assert.equal(missing.status, 404);
  assert.equal((await rerank("/v1/rerank", { query: "hello", documents })).status, 200, "still serving");
});
