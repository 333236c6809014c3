// When an ONNX model counts as quick enough for the main thread (session-client.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { QuickRunPolicy } from "../../src/runtimes/onnx/session-client.js";

const limits = { maxRunMs: 0.5, streak: 4, bailMs: 2, slowInARow: 3 };

test("a streak of quick worker runs opens the main thread's session once; a slow run restarts the streak", () => {
  const p = new QuickRunPolicy(true, limits);
  assert.deepEqual([0.1, 0.2, 0.3].map((ms) => p.workerRan(ms, 100)), [false, false, false]);
  assert.equal(p.workerRan(0.9, 100), false, "a slow run breaks the streak");
  assert.equal(p.fits(1), false, "nothing runs on the main thread before the streak");
  assert.deepEqual([0.1, 0.1, 0.1, 0.5].map((ms, i) => p.workerRan(ms, 100 + i)), [false, false, false, true]);
  assert.equal(p.workerRan(0.1, 100), false, "only once");
});

test("only requests no larger than the streak's largest run on the main thread", () => {
  const p = new QuickRunPolicy(true, limits);
  [300, 100, 200, 100].forEach((bytes) => p.workerRan(0.1, bytes));
  assert.equal(p.fits(300), true);
  assert.equal(p.fits(301), false);
});

test("three slow main-thread runs in a row send the model back to its worker for good; one does not", () => {
  const p = new QuickRunPolicy(true, limits);
  for (let i = 0; i < 4; i++) p.workerRan(0.1, 100);
  assert.deepEqual([2.5, 2.5, 0.1, 2.5, 2.5].map((ms) => p.mainRan(ms)), [true, true, true, true, true]);
  assert.equal(p.mainRan(3), false);
  assert.equal(p.fits(100), false);
  assert.equal(p.mainRan(0.1), false);
});

test("a model that may not run on the main thread never does", () => {
  const p = new QuickRunPolicy(false, limits);
  assert.deepEqual(Array.from({ length: 8 }, () => p.workerRan(0.1, 100)), Array(8).fill(false));
  assert.equal(p.fits(0), false);
});
