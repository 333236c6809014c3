// Needs no external model: ONNX models are generated at test time (test/fixtures/onnx-writer.ts).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { OnnxModel } from "../../src/runtimes/onnx/onnx-model.js";
import {
  dynamicImageOnnx, linearClassifierForward, linearClassifierOnnx, linearClassifierWeights, slowOnnx, typesZooOnnx,
} from "../fixtures/onnx-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
const W = linearClassifierWeights();
const rows = [[0.5, -1, 2, 0.25], [1, 1, 1, 1], [-3, 0, 0.5, 2]];
const close = (a: number[], b: ArrayLike<number>) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) < 1e-5);
const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as any };
};

before(async () => {
  srv = await startTestServer({
    files: {
      "lin.onnx": linearClassifierOnnx(),
      "zoo.onnx": typesZooOnnx(),
      "image.onnx": dynamicImageOnnx(),
      // ~100 ms per run on a tiny input: the time goes to onnxruntime, not to JSON.
      "slow.onnx": slowOnnx({ size: 1024, iterations: 2000 }),
      "broken.onnx": linearClassifierOnnx().subarray(0, 100),
      "garbage.onnx": Buffer.from("definitely not protobuf \u0000\u0001"),
    },
    config: { maxTensorElements: 100_000 },
  });
});
after(() => srv.cleanup());

test("an ONNX model shows its inputs and outputs with dynamic dims by name", async () => {
  const list = await getJson(`${srv.url}/models`);
  const lin = list.body.models.find((m: { id: string }) => m.id === "lin");
  assert.equal(lin.type, "onnx");
  assert.deepEqual(lin.capabilities, ["tensor-inference"]);
  assert.deepEqual(lin.inputs, [{ name: "x", type: "float32", shape: ["batch", 4] }]);
  assert.deepEqual(lin.outputs, [{ name: "probs", type: "float32", shape: ["batch", 3] }]);
});

test("tensor inference: nested JSON in, outputs and latency out, values right", async () => {
  const r = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.outputs.probs.shape, [3, 3]);
  assert.equal(r.body.outputs.probs.dtype, "float32");
  rows.forEach((row, i) => assert.ok(close(r.body.outputs.probs.data[i], linearClassifierForward(W, row)), `row ${i}`));
  assert.equal(typeof r.body.latency_ms, "number");
  // The binary form gives the same answer; "flat" returns row-major data.
  const bytes = Buffer.from(new Float32Array(rows.flat()).buffer).toString("base64");
  const b = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: { data_b64: bytes, shape: [3, 4], dtype: "float32" } }, layout: "flat" });
  assert.equal(b.status, 200);
  assert.ok(close(b.body.outputs.probs.data, r.body.outputs.probs.data.flat()));
});

test("element types travel both ways: int64, bool, int8, uint8, float16, fixed-shape float32", async () => {
  const big = "9007199254740993"; // 2^53 + 1 survives as a string
  const r = await postJson(`${srv.url}/models/zoo/inference`, {
    inputs: { ids: [[1, -2, big]], mask: [[true, false, true]], small: [-128, 127], u8: [0, 255], half: [1.5, -0.25], f: [[-1, 0, 2]] },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const o = r.body.outputs;
  assert.deepEqual(o.ids_out, { shape: [1, 3], dtype: "int64", data: [[1, -2, big]] });
  assert.deepEqual(o.mask_not.data, [[false, true, false]]);
  assert.deepEqual(o.small_out.data, [-128, 127]);
  assert.deepEqual(o.u8_out.data, [0, 255]);
  assert.deepEqual(o.half_out, { shape: [2], dtype: "float16", data: [1.5, -0.25] });
  assert.deepEqual(o.f_relu.data, [[0, 0, 2]]);
  const only = await postJson(`${srv.url}/models/zoo/inference`, {
    inputs: { ids: [[1]], mask: [[true]], small: [1, 2], u8: [1, 2], half: [1, 2], f: [[1, 2, 3]] },
    outputs: ["f_relu"],
  });
  assert.deepEqual(Object.keys(only.body.outputs), ["f_relu"]);
});

test("shape and type errors are precise 400s; oversized tensors are 413", async () => {
  const zoo = (inputs: Record<string, unknown>) => ({
    inputs: { ids: [[1]], mask: [[true]], small: [1, 2], u8: [1, 2], half: [1, 2], f: [[1, 2, 3]], ...inputs },
  });
  const cases: Array<[string, unknown, number, Record<string, unknown>]> = [
    ["lin", { inputs: { x: rows, y: rows } }, 400, { unknown: ["y"] }],
    ["lin", { inputs: {} }, 400, { missing: ["x"] }],
    ["lin", { inputs: { x: [[1, 2, 3, 4], [1, 2]] } }, 400, { input: "x" }],
    ["lin", { inputs: { x: [1, 2, 3, 4] } }, 400, { input: "x", expected: 2, got: 1 }],
    ["lin", { inputs: { x: [[1, 2, 3]] } }, 400, { input: "x", axis: 1 }],
    ["lin", { inputs: { x: [["a", 2, 3, 4]] } }, 400, { input: "x" }],
    ["zoo", zoo({ f: [[1, 2, 3], [4, 5, 6]] }), 400, { input: "f", axis: 0 }],
    ["zoo", zoo({ small: [300, 1] }), 400, { input: "small", got: 300 }],
    ["zoo", zoo({ mask: [[1]] }), 400, { input: "mask" }],
    ["zoo", zoo({ ids: [[1.5]] }), 400, { input: "ids" }],
    ["lin", { inputs: { x: rows }, outputs: ["nope"] }, 400, { unknown: ["nope"] }],
    ["lin", { inputs: { x: { data_b64: "AAAA", shape: [1, 4], dtype: "float32" } } }, 400, { input: "x" }],
    ["lin", { inputs: { x: Array.from({ length: 30_000 }, () => [1, 2, 3, 4]) } }, 413, { input: "x" }],
    ["lin", { prompt: "hello" }, 400, {}],
  ];
  for (const [model, body, status, details] of cases) {
    const r = await postJson(`${srv.url}/models/${model}/inference`, body);
    assert.equal(r.status, status, `${model} ${JSON.stringify(body).slice(0, 80)} → ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, status === 413 ? "PAYLOAD_TOO_LARGE" : "INVALID_REQUEST");
    for (const [k, v] of Object.entries(details)) assert.deepEqual(r.body.error.details[k], v, `${k} in ${JSON.stringify(r.body.error)}`);
  }
});

test("malformed ONNX files get a coded 422 and the server keeps serving", async () => {
  for (const id of ["broken", "garbage"]) {
    const r = await postJson(`${srv.url}/models/${id}/inference`, { inputs: { x: rows } });
    assert.equal(r.status, 422, id);
    assert.equal(r.body.error.code, "INVALID_MODEL_FILE");
  }
  assert.equal((await getJson(`${srv.url}/health`)).status, 200);
  assert.equal((await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } })).status, 200);
});

test("KServe v2: health, server and model metadata, readiness, infer field by field", async () => {
  assert.deepEqual((await getJson(`${srv.url}/v2/health/live`)).body, { live: true });
  assert.deepEqual((await getJson(`${srv.url}/v2/health/ready`)).body, { ready: true });
  assert.equal((await getJson(`${srv.url}/v2`)).body.name, "inferno");
  const meta = await getJson(`${srv.url}/v2/models/lin`);
  assert.deepEqual(meta.body, {
    name: "lin", versions: ["1"], platform: "onnxruntime_onnx",
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "probs", datatype: "FP32", shape: [-1, 3] }],
  });
  assert.deepEqual((await getJson(`${srv.url}/v2/models/lin/ready`)).body, { name: "lin", ready: true });
  const r = await postJson(`${srv.url}/v2/models/lin/infer`, {
    id: "req-1",
    inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", data: rows.flat() }],
    outputs: [{ name: "probs" }],
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.model_name, "lin");
  assert.equal(r.body.id, "req-1");
  assert.equal(r.body.outputs.length, 1);
  const out = r.body.outputs[0];
  assert.deepEqual([out.name, out.shape, out.datatype], ["probs", [3, 3], "FP32"]);
  assert.ok(close(out.data, rows.flatMap((row) => [...linearClassifierForward(W, row)])));
  const v1 = await postJson(`${srv.url}/v2/models/lin/versions/1/infer`, { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: rows[0] }] });
  assert.equal(v1.status, 200);
  // Errors in the protocol's shape.
  const wrongType = await postJson(`${srv.url}/v2/models/lin/infer`, { inputs: [{ name: "x", shape: [1, 4], datatype: "INT64", data: [1, 2, 3, 4] }] });
  assert.equal(wrongType.status, 400);
  assert.deepEqual(Object.keys(wrongType.body), ["error"]);
  const badCount = await postJson(`${srv.url}/v2/models/lin/infer`, { inputs: [{ name: "x", shape: [2, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
  assert.equal(badCount.status, 400);
  assert.equal((await getJson(`${srv.url}/v2/models/missing`)).status, 404);
  assert.equal((await getJson(`${srv.url}/v2/models/lin/versions/2`)).status, 404);
});

test("dynamic batching merges concurrent requests; each caller gets exactly its own rows", async () => {
  // A long queue delay makes the merge certain; the delay is per model (registration option).
  const reg = await postJson(`${srv.url}/models`, { name: "lin-batched", path: "lin.onnx", options: { max_queue_delay_us: 200_000, max_batch_size: 64 } });
  assert.equal(reg.status, 201);
  await postJson(`${srv.url}/models/lin-batched/load`, {});
  const model = srv.app.registry.getLoaded("lin-batched") as OnnxModel;
  const runsBefore = model.engineRuns.runs;
  const requests = Array.from({ length: 12 }, (_, i) => [[i, -i, i / 2, 1], ...(i % 3 === 0 ? [[1, 2, 3, 4]] : [])]);
  const results = await Promise.all(requests.map((x) => postJson(`${srv.url}/models/lin-batched/inference`, { inputs: { x } })));
  const runs = model.engineRuns.runs - runsBefore;
  assert.ok(runs < requests.length, `${requests.length} requests took ${runs} runs`);
  // /metrics counts the same runs, and the requests they served (more than one a run: batching at work).
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  const counter = (name: string) => Number(new RegExp(`^${name}\\{model="lin-batched"\\} (\\d+)`, "m").exec(metrics)?.[1]);
  assert.equal(counter("inferno_model_runs_total"), model.engineRuns.runs);
  assert.ok(counter("inferno_model_run_items_total") >= requests.length, metrics);
  assert.ok(counter("inferno_model_run_items_total") > counter("inferno_model_runs_total"), metrics);
  results.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.body.outputs.probs.shape[0], requests[i]!.length);
    requests[i]!.forEach((row, j) => assert.ok(close(r.body.outputs.probs.data[j], linearClassifierForward(W, row))));
  });
  // Different non-batch shapes are never mixed: the image model with several H×W at once.
  const images = [[2, 2], [3, 5], [2, 2], [4, 1]].map(([h, w], k) =>
    Array.from({ length: 3 }, (_, c) => Array.from({ length: h! }, (_, y) => Array.from({ length: w! }, (_, x) => k + c * 10 + y + x))));
  const outs = await Promise.all(images.map((img) => postJson(`${srv.url}/models/image/inference`, { inputs: { image: [img] } })));
  outs.forEach((r, k) => {
    const want = images[k]!.map((plane) => plane.flat().reduce((a, b) => a + b, 0) / plane.flat().length);
    assert.ok(close(r.body.outputs.channel_means.data[0], want), `image ${k}`);
  });
});

test("a request cancelled while queued never runs", async () => {
  await postJson(`${srv.url}/models`, { name: "lin-slowq", path: "lin.onnx", options: { max_queue_delay_us: 5_000_000 } });
  await postJson(`${srv.url}/models/lin-slowq/load`, {});
  const model = srv.app.registry.getLoaded("lin-slowq") as OnnxModel;
  const before = model.engineRuns.runs;
  const controller = new AbortController();
  const pending = fetch(`${srv.url}/models/lin-slowq/inference`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs: { x: rows } }), signal: controller.signal,
  }).catch(() => undefined);
  for (let i = 0; i < 200 && model.queued === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(model.queued, 1);
  controller.abort();
  await pending;
  for (let i = 0; i < 200 && model.queued > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(model.queued, 0);
  assert.equal(model.engineRuns.runs, before, "the cancelled request never reached the session");
});

test("a slow model does not block the event loop: /health answers while it runs", async () => {
  const x = [Array.from({ length: 1024 }, (_, i) => (i % 7) / 7)];
  await postJson(`${srv.url}/models/slow/load`, {});
  let inferenceDone = 0;
  const slow = postJson(`${srv.url}/models/slow/inference`, { inputs: { x } }).then((r) => ((inferenceDone = performance.now()), r));
  await new Promise((r) => setTimeout(r, 10));
  const health = await fetch(`${srv.url}/health`);
  const healthDone = performance.now();
  const result = await slow;
  assert.equal(health.status, 200);
  assert.equal(result.status, 200);
  assert.ok(healthDone < inferenceDone, `health answered before the ${result.body.latency_ms} ms inference finished`);
});

test("a model whose worker thread died is loaded again on the next request", async () => {
  await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } });
  const model = srv.app.registry.getLoaded("lin") as OnnxModel;
  // Reach into the session client: nothing public kills a worker, which is the point.
  await (model as unknown as { session: { worker: { terminate(): Promise<number> } } }).session.worker.terminate();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(model.broken, true);
  const r = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } });
  assert.equal(r.status, 200);
  assert.notEqual(srv.app.registry.getLoaded("lin"), model, "a fresh session serves");
});
