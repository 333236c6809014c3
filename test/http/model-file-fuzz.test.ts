import assert from "node:assert/strict";
import { open, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { hostileGgufs, hostileOnnxs, type HostileModel } from "../fixtures/hostile-models.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx } from "../fixtures/onnx-writer.js";
import { serveCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";
import { postJson } from "../helpers/server.js";

// Hostile model files against a real `inferno serve` child: a file that made llama.cpp abort would
// end that process, which this test sees, and its RSS is read from /proc.

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function writeModel(file: string, m: HostileModel): Promise<void> {
  await writeFile(file, m.bytes);
  if (m.sparseSize) {
    const fh = await open(file, "r+");
    await fh.truncate(m.sparseSize); // a hole: no disk is used
    await fh.close();
  }
}

function assertCleanError(body: any, where: string): void {
  assert.equal(typeof body?.error?.code, "string", `${where}: coded error envelope, got ${JSON.stringify(body)}`);
  const text = JSON.stringify(body);
  assert.doesNotMatch(text, /\/tmp\/|\/work\/|node_modules|\bat \S+ \(/, `${where}: no paths or stack in ${text}`);
}

test("hostile GGUF and ONNX files are coded 4xx, the server survives and its memory stays put", { timeout: 300_000 }, async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const modelsDir = path.join(tmp.dir, "models");
  const root = path.join(tmp.dir, "uploads");
  await Promise.all([modelsDir, root].map((d) => import("node:fs/promises").then((fs) => fs.mkdir(d, { recursive: true }))));
  await writeFile(path.join(modelsDir, "good.gguf"), buildTinyLlamaGguf());
  await writeFile(path.join(modelsDir, "good-onnx.onnx"), linearClassifierOnnx());
  const server = await serveCli(["--models-dir", modelsDir, "--data-dir", path.join(tmp.dir, "data"), "--model-root", root, "--threads", "1", "--context-size", "256"]);
  t.after(() => server.child.kill("SIGKILL"));
  void server.exit.then(({ code, signal }) => {
    if (code !== 0 && process.env.FUZZ_LOG) void writeFile(process.env.FUZZ_LOG, `ended (${code ?? signal})\n${server.log()}`);
  });
  const pid = server.child.pid!;

  // Warm up each runtime once (onnxruntime and llama.cpp load their libraries on first use), then measure.
  assert.equal((await postJson(`${server.url}/inference`, { model: "good", prompt: "once", max_tokens: 4 })).status, 200);
  assert.equal((await postJson(`${server.url}/models/good-onnx/inference`, { inputs: { x: [[1, 2, 3, 4]] } })).status, 200);
  const rssBefore = await rssBytes(pid);

  const cases = [...hostileGgufs(), ...hostileOnnxs()];
  assert.ok(cases.filter((c) => c.ext === "gguf").length >= 20 && cases.filter((c) => c.ext === "onnx").length >= 20);
  // Each answer within a second; the file after one that aborted llama.cpp waits for the check's
  // process to start again (node-llama-cpp takes about a second to load), so it gets three.
  const timings: Array<[string, number, number]> = [];
  for (const [i, m] of cases.entries()) {
    const id = `h-${m.ext}-${m.name}`;
    const where = `${m.ext} ${m.name}`;
    // Half are registered by path, half dropped into the models dir and loaded by their first request.
    const viaRegister = i % 2 === 0;
    const file = path.join(viaRegister ? root : modelsDir, `${id}.${m.ext}`);
    await writeModel(file, m);
    const started = performance.now();
    let res = viaRegister ? await postJson(`${server.url}/models`, { name: id, path: file }) : { status: 201, body: undefined };
    if (res.status === 201) res = await postJson(`${server.url}/models/${id}/load`, {});
    const ms = performance.now() - started;
    timings.push([where, ms, cases[i - 1]?.aborts ? 3000 : 1000]);
    if (m.expect === "refused") {
      assert.ok(res.status >= 400 && res.status < 500, `${where}: expected a 4xx, got ${res.status} ${JSON.stringify(res.body)}`);
      assertCleanError(res.body, where);
      if (m.aborts) assert.match(res.body.error.message, /GGML_ASSERT\(.+\) failed/, `${where}: llama.cpp's assert is the reason`);
    } else if (m.expect === "tolerated") {
      assert.equal(res.status, 200, `${where}: ${JSON.stringify(res.body)}`);
      const gen = await postJson(`${server.url}/inference`, { model: id, prompt: "once upon", max_tokens: 4 });
      assert.equal(gen.status, 200, `${where}: generation ${JSON.stringify(gen.body)}`);
      await postJson(`${server.url}/models/${id}/unload`, {});
    } else {
      assert.ok(res.status < 500, `${where}: ${res.status} ${JSON.stringify(res.body)}`);
      if (res.status >= 400) assertCleanError(res.body, where);
      else await postJson(`${server.url}/models/${id}/unload`, {});
    }
  }

  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200, "the server is still up");
  const rssAfter = await rssBytes(pid);
  const slowest = [...timings].sort((a, b) => b[1] - a[1]).slice(0, 3);
  if (process.env.FUZZ_TIMINGS) console.log(timings.map(([w, ms]) => `${w} ${Math.round(ms)}`).join("\n"));
  t.diagnostic(`rss ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB; slowest: ${slowest.map(([w, ms]) => `${w} ${Math.round(ms)} ms`).join(", ")}`);
  assert.ok(rssAfter - rssBefore < 50 * 2 ** 20, `RSS grew by ${((rssAfter - rssBefore) / 2 ** 20).toFixed(1)} MiB`);
  for (const [where, ms, limit] of timings) assert.ok(ms < limit, `${where} took ${Math.round(ms)} ms (limit ${limit})`);
});
