import assert from "node:assert/strict";
import { test } from "node:test";
import { formatBytes, parseBudget, parseVramBudget, planLoad, type Candidate } from "../../src/registry/memory-budget.js";

const MB = 1_000_000;
const idle = (id: string, ram: number, lastUsed: number, vram = 0): Candidate => ({ id, use: { ram, vram }, lastUsed });

test("budgets parse as auto, bytes, sizes with units and shares; anything else is refused", () => {
  assert.equal(parseBudget("auto"), "auto");
  assert.deepEqual(parseBudget(1234), { bytes: 1234 });
  assert.deepEqual(parseBudget("1234"), { bytes: 1234 });
  assert.deepEqual(parseBudget("8GiB"), { bytes: 8 * 1024 ** 3 });
  assert.deepEqual(parseBudget("512 MB"), { bytes: 512 * MB });
  assert.deepEqual(parseBudget("1.5g"), { bytes: 1.5e9 });
  assert.deepEqual(parseBudget("75%"), { percent: 75 });
  for (const bad of ["", "0", "-1", "101%", "0%", "8 parsecs", "GiB", "auto ish", -5, 0, Number.NaN, null, {}]) {
    assert.equal(parseBudget(bad), undefined, `refuses ${String(bad)}`);
  }
  assert.equal(parseVramBudget("50%"), undefined, "a share of RAM means nothing for VRAM");
  assert.deepEqual(parseVramBudget("20GiB"), { bytes: 20 * 1024 ** 3 });
  assert.equal(formatBytes(1536 * 1024 ** 2), "1.5 GiB");
  assert.equal(formatBytes(512), "512 B");
});

test("a load that fits unloads nothing", () => {
  const plan = planLoad({ need: { ram: 10 * MB, vram: 0 }, room: { ram: 10 * MB, vram: 0 }, count: 2, idle: [idle("a", MB, 1)], maxLoaded: 0 });
  assert.deepEqual(plan, { ok: true, unload: [] });
});

test("idle models are unloaded least recently used first, only as many as needed", () => {
  const plan = planLoad({
    need: { ram: 50 * MB, vram: 0 },
    room: { ram: 10 * MB, vram: 0 },
    count: 3,
    idle: [idle("new", 30 * MB, 30), idle("old", 30 * MB, 10), idle("mid", 30 * MB, 20)],
    maxLoaded: 0,
  });
  assert.deepEqual(plan, { ok: true, unload: ["old", "mid"] });
});

test("when even every idle model is not enough, nothing is unloaded and the refusal says what was free", () => {
  const plan = planLoad({ need: { ram: 100 * MB, vram: 0 }, room: { ram: 5 * MB, vram: 0 }, count: 2, idle: [idle("a", 20 * MB, 1)], maxLoaded: 0 });
  assert.deepEqual(plan, { ok: false, reason: "memory", resource: "ram", needed: 100 * MB, free: 25 * MB });
});

test("GPU memory is planned alongside RAM: unloading frees both", () => {
  const need = { ram: MB, vram: 8 * MB };
  const fits = planLoad({ need, room: { ram: 100 * MB, vram: 2 * MB }, count: 2, idle: [idle("cpu", 50 * MB, 1), idle("gpu", MB, 2, 6 * MB)], maxLoaded: 0 });
  assert.deepEqual(fits, { ok: true, unload: ["cpu", "gpu"] }, "in LRU order, until the VRAM fits");
  const short = planLoad({ need, room: { ram: 100 * MB, vram: 0 }, count: 0, idle: [], maxLoaded: 0 });
  assert.deepEqual(short, { ok: false, reason: "memory", resource: "vram", needed: 8 * MB, free: 0 });
});

test("the loaded-model limit unloads the least recently used idle model, or refuses when all are busy", () => {
  const need = { ram: MB, vram: 0 };
  const room = { ram: 100 * MB, vram: 0 };
  assert.deepEqual(planLoad({ need, room, count: 2, idle: [idle("b", MB, 5), idle("a", MB, 3)], maxLoaded: 2 }), { ok: true, unload: ["a"] });
  assert.deepEqual(planLoad({ need, room, count: 2, idle: [], maxLoaded: 2 }), { ok: false, reason: "count", loaded: 2, max: 2 });
  assert.deepEqual(planLoad({ need, room, count: 50, idle: [], maxLoaded: 0 }), { ok: true, unload: [] }, "0 is no limit");
});

test("a room already overdrawn (budget lowered, memory taken by others) is reported as zero free", () => {
  const plan = planLoad({ need: { ram: MB, vram: 0 }, room: { ram: -5 * MB, vram: 0 }, count: 0, idle: [], maxLoaded: 0 });
  assert.deepEqual(plan, { ok: false, reason: "memory", resource: "ram", needed: MB, free: 0 });
});
