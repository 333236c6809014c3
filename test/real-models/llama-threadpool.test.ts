// node-llama-cpp's addon as scripts/build-llama-addon.sh builds it (patches/node-llama-cpp-threadpool.patch):
// a context on 2 threads decodes on a persistent ggml thread pool instead of creating its threads for
// every token. Seen from outside: Linux hands out thread ids in order, so the ids taken while 64 tokens
// are decoded count the threads created meanwhile. The same run with NLC_NO_THREADPOOL=1 (the prebuilt
// addon's behaviour) must show them, or this test could not fail. Needs stories260K.gguf; Linux only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { realModel, repoRoot } from "../helpers/paths.js";

const stories = realModel("stories260K.gguf");
const bins = path.join(repoRoot, `node_modules/@node-llama-cpp/linux-${process.arch}/bins/linux-${process.arch}`);
const patched = existsSync(path.join(bins, "_infernoAddon"));
const skip = stories.skip || (process.platform !== "linux" ? "Linux only" : !patched && process.env.CI !== "true" ? "the patched addon is not built (npm run build:llama-addon)" : false);

/** Decodes 64 tokens on a 2-thread context in a fresh process; answers how many thread ids were taken meanwhile. */
function threadsCreated(env: NodeJS.ProcessEnv): number {
  const script = `
    import { spawnSync } from "node:child_process";
    import { getLlama } from "node-llama-cpp";
    const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, logLevel: "error" });
    const model = await llama.loadModel({ modelPath: ${JSON.stringify(stories.path)} });
    const context = await model.createContext({ contextSize: 256, threads: 2 });
    const sequence = context.getSequence();
    const prompt = model.tokenize("Once upon a time");
    const probe = () => spawnSync("true").pid;
    let n = 0;
    for await (const _ of sequence.evaluate(prompt, { temperature: 0 })) if (++n === 4) break; // warm up
    const before = probe();
    for await (const _ of sequence.evaluate([model.tokenize(" there")[0]], { temperature: 0 })) if (++n === 68) break;
    const after = probe();
    console.log(JSON.stringify({ created: after - before - 1, tokens: n - 4 }));
    await context.dispose();
    await model.dispose();
  `;
  // A module file in the repository (so that node-llama-cpp resolves), not -e: node-llama-cpp tests its
  // binary in a child that inherits the parent's execArgv.
  const file = path.join(repoRoot, "dist", `.threadpool-probe-${process.pid}.mjs`);
  writeFileSync(file, script);
  const run = spawnSync(process.execPath, [file], { cwd: repoRoot, env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  rmSync(file, { force: true });
  assert.equal(run.status, 0, run.stderr);
  const { created, tokens } = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { created: number; tokens: number };
  assert.equal(tokens, 64);
  return created;
}

test("the patched addon is in place, the prebuilt one kept beside it", { skip }, () => {
  assert.ok(existsSync(path.join(bins, "llama-addon.node.prebuilt")));
  assert.match(readFileSync(path.join(bins, "_infernoAddon"), "utf8"), /^\d+-\d+-\d+\n$/);
});

test("2 threads: the decode threads persist across tokens (a disposable pool would make one per token)", { skip }, (t) => {
  const withPool = threadsCreated({});
  const without = threadsCreated({ NLC_NO_THREADPOOL: "1" });
  t.diagnostic(`thread ids taken over 64 tokens: ${withPool} with the pool, ${without} without`);
  assert.ok(without >= 64, `without the pool, a thread per token: ${without} thread ids taken`);
  assert.ok(withPool < 16, `with the pool, next to none: ${withPool} thread ids taken`);
});
