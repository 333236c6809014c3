// What the model-file check (a load in a child process before the in-process load, see
// src/runtimes/llama/gguf-probe.ts) adds to a model's first load, measured as a user sees it: the time
// of `POST /models/{id}/load` over HTTP on a fresh server, with the check, without it (probeModels
// false), and with the verdict already remembered (a restart on the same data dir).
//
//   npm run build && node dist/bench/model-check.js [--runs 5] [--model PATH]... [--no-generated]
//
// Besides the models given, it generates a random-weight F16 GGUF with the shape of a 0.5B llama
// (896 wide, 24 blocks, FFN 4864, 14 heads / 2 KV heads, 32k vocabulary; ~0.8 GB), since no mid-size
// model can be downloaded here. Page cache is warm for every run (the file was just written or read).
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/config.js";
import { buildServer } from "../src/server.js";
import { randomLlamaGguf, SHAPE_05B, syntheticVocabulary } from "./bench-model.js";

/** One fresh server (in this process; the probe child is its own process anyway), one timed load over HTTP. */
async function timedLoad(modelPath: string, dataDir: string, probeModels: boolean): Promise<number> {
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "inferno-check-models-"));
  const real = await realpath(modelPath);
  const id = path.basename(real, ".gguf");
  await symlink(real, path.join(modelsDir, `${id}.gguf`));
  const config = loadConfig({
    env: {},
    flags: { port: 0, gpu: "cpu", threads: 1, parallel: 1, contextSize: 512, logLevel: "silent", modelsDir, dataDir, modelRoots: [path.dirname(real)], probeModels },
  });
  const app = await buildServer(config);
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as { port: number };
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/models/${id}/load`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    const ms = performance.now() - started;
    if (res.status !== 200) throw new Error(`load of ${id} answered ${res.status}: ${await res.text()}`);
    return ms;
  } finally {
    await app.close();
    await rm(modelsDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, model: { type: "string", multiple: true }, "no-generated": { type: "boolean" } } });
  const runs = Number(values.runs);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-check-"));
  try {
    const models = [...(values.model ?? [path.resolve("../shared/models/stories260K.gguf")])];
    if (!values["no-generated"]) {
      const file = path.join(tmp, "random-0.5b-shape-f16.gguf");
      await writeFile(file, randomLlamaGguf(SHAPE_05B, syntheticVocabulary(32000)));
      models.push(file);
    }
    console.log(`model-check: ${runs} runs each, threads 1, context 512, ${os.cpus()[0]?.model ?? "cpu"} x${os.availableParallelism()}, Node ${process.version}`);
    console.log("model | first load without check | first load with check | added | load with remembered verdict");
    for (const model of models) {
      const without: number[] = [];
      const withCheck: number[] = [];
      const remembered: number[] = [];
      for (let i = 0; i < runs; i++) {
        const dataDir = path.join(tmp, `data-${path.basename(model)}-${i}`);
        await mkdir(dataDir, { recursive: true });
        // Alternate which goes first, so neither always finds the page cache the other warmed.
        if (i % 2 === 0) without.push(await timedLoad(model, path.join(dataDir, "off"), false));
        withCheck.push(await timedLoad(model, dataDir, true));
        if (i % 2 === 1) without.push(await timedLoad(model, path.join(dataDir, "off"), false));
        remembered.push(await timedLoad(model, dataDir, true));
      }
      const [a, b, c] = [median(without), median(withCheck), median(remembered)];
      console.log(`${path.basename(model)} | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | +${(b - a).toFixed(0)} ms | ${c.toFixed(0)} ms`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
