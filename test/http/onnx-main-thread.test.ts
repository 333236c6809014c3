// A quick ONNX model's requests run on the main thread while its worker idles (session-client.ts, QUICK_RUNS):
// over HTTP, with generated models: a quick one moves there after its streak and answers the same numbers, a
// slow one never does, and INFERNO_ONNX_MAIN_THREAD=0 keeps every run on the worker.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { linearClassifierForward, linearClassifierOnnx, linearClassifierWeights, slowOnnx } from "../fixtures/onnx-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";
import { QUICK_RUNS } from "../../src/runtimes/onnx/session-client.js";

let srv: TestServer;

before(async () => {
  srv = await startTestServer({ files: { "lin.onnx": linearClassifierOnnx(), "slow.onnx": slowOnnx(), "lin2.onnx": linearClassifierOnnx() } });
});
after(async () => {
  await srv.cleanup();
});

/** inferno_model_runs_total and inferno_model_main_thread_runs_total of `model`. */
async function runs(model: string): Promise<{ all: number; main: number }> {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{model="${model}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { all: value("inferno_model_runs_total"), main: value("inferno_model_main_thread_runs_total") };
}

const weights = linearClassifierWeights();
const input = (i: number) => [Math.sin(i), Math.cos(i * 0.7), i / 10, -i / 7];

async function classify(model: string, x: number[]): Promise<number[]> {
  const res = await postJson(`${srv.url}/models/${model}/inference`, { inputs: { x: [x] } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.outputs.probs.data;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-5, `${what}: [${i}] ${actual[i]} vs ${expected[i]}`);
}

test("a quick model's requests move to the main thread after its streak, with the same answers, alone and at once", async () => {
  // A run over QUICK_RUNS.maxRunMs (a busy machine) starts the streak again, so requests go on until the main
  // thread has taken 16, within a bound.
  let n = 0;
  let sequential = { all: 0, main: 0 };
  while (n < QUICK_RUNS.streak + 24 || (sequential.main < 16 && n < 400)) {
    assertClose((await classify("lin", input(n))).flat(), linearClassifierForward(weights, input(n)), `request ${n}`);
    n++;
    if (n >= QUICK_RUNS.streak + 24) sequential = await runs("lin");
  }
  assert.equal(sequential.all, n, "one run a request");
  // The first `streak` runs were the worker's; the main thread's session opens after them, in the background.
  assert.ok(sequential.main >= 16 && sequential.main <= n - QUICK_RUNS.streak, `main-thread runs ${sequential.main} of ${n}`);

  // At once: a request that finds the worker busy (or is batched with others) goes to the worker, the rest run
  // here; whichever thread ran it, every answer is its own.
  const xs = Array.from({ length: 48 }, (_, i) => input(100 + i));
  const answers = await Promise.all(xs.map((x) => classify("lin", x)));
  answers.forEach((a, i) => assertClose(a.flat(), linearClassifierForward(weights, xs[i]!), `concurrent request ${i}`));
});

test("a slow model never runs on the main thread", async () => {
  const x = Array.from({ length: 512 }, (_, i) => Math.sin(i));
  for (let i = 0; i < QUICK_RUNS.streak + 4; i++) {
    const res = await postJson(`${srv.url}/models/slow/inference`, { inputs: { x: [x] } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  const slow = await runs("slow");
  assert.equal(slow.all, QUICK_RUNS.streak + 4);
  assert.equal(slow.main, 0);
});

test("INFERNO_ONNX_MAIN_THREAD=0 keeps a quick model on its worker", async () => {
  process.env.INFERNO_ONNX_MAIN_THREAD = "0";
  try {
    for (let i = 0; i < QUICK_RUNS.streak + 8; i++) await classify("lin2", input(i)); // the first request loads it, under the setting
  } finally {
    delete process.env.INFERNO_ONNX_MAIN_THREAD;
  }
  const off = await runs("lin2");
  assert.equal(off.all, QUICK_RUNS.streak + 8);
  assert.equal(off.main, 0);
});
