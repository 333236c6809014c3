/**
 * Inferno against llama.cpp's own server and raw node-llama-cpp, side by side in one run on one machine:
 * closed loops of 1, 8 and 32 clients on 8 sequences, prompt processing of a 512-token prompt, time to
 * first token of a short cached prompt, and each server's RSS, at each llama.cpp thread setting.
 * Run: `npm run bench:peer` (`-- --quick` for about a minute), or `node dist/bench/peer.js --help`.
 */
import { statSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { llamaProcessEnv } from "../src/runtimes/llama/threadpool.js";
import { repoRoot } from "./args.js";
import { ensureLlamaServer, findLlamaServer, llamaCppTag, llamaServerVersion } from "../src/runtimes/llama-server/llama-server-bin.js";
import { machineBusyMs, packageVersion } from "./onnx-machine.js";
import { formatThreads, parsePeerArgs, peerUsage, type PeerOptions, type ThreadSetting } from "./peer-args.js";
import { startInfernoEngine, startLlamaServerEngine, startRawEngine, type EngineSettings, type PeerEngine } from "./peer-engines.js";
import { peerBenchModel } from "./peer-model.js";
import { preparePrompts, type LongPrompt } from "./peer-prompts.js";
import { formatPeerReport, type EngineResult, type PeerReport, type SettingResult } from "./peer-report.js";

/** Pause after each engine's turn: abandoned requests finish cleaning up, llama.cpp's threads stop spinning. */
const SETTLE_MS = 200;
const TTFT_WARMUP = 5;
const TTFT_GAP_MS = 10;

/** The engines in a turn's order: rotated every turn, so none always runs first (or right after another). */
const rotate = <T>(list: T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]!);

interface Context {
  opts: PeerOptions;
  model: string;
  bin: string | undefined;
  logDir: string;
  prompts: LongPrompt[];
}

async function startEngines(ctx: Context, setting: ThreadSetting): Promise<PeerEngine[]> {
  const settings: EngineSettings = {
    modelPath: ctx.model,
    ...setting,
    parallel: ctx.opts.parallel,
    contextSize: ctx.opts.contextSize,
    batchSize: ctx.opts.batchSize,
    ...(ctx.opts.streamIntervalMs !== undefined ? { streamIntervalMs: ctx.opts.streamIntervalMs } : {}),
  };
  // Started together (nothing is measured yet); if one fails, the others are closed again.
  const starts = ctx.opts.engines.map((name): Promise<PeerEngine> => {
    if (name === "llama-server") return startLlamaServerEngine(ctx.bin!, settings, ctx.logDir);
    if (name === "raw") return startRawEngine(settings);
    if (name === "inferno-ls") return startInfernoEngine(settings, { engine: "llama-server", llamaServer: ctx.bin! });
    return startInfernoEngine(settings);
  });
  const started = await Promise.allSettled(starts);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    for (const s of started) if (s.status === "fulfilled") await s.value.close();
    throw failed.reason;
  }
  return started.map((s) => (s as PromiseFulfilledResult<PeerEngine>).value);
}

async function runSetting(ctx: Context, setting: ThreadSetting): Promise<SettingResult> {
  const { opts } = ctx;
  const log = (msg: string) => process.stderr.write(`[threads ${formatThreads(setting)}] ${msg}\n`);
  const t0 = performance.now();
  log(`starting ${opts.engines.join(", ")}`);
  const engines = await startEngines(ctx, setting);
  log(`started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const results = new Map<PeerEngine, EngineResult>(
    engines.map((e) => [
      e,
      { engine: e.name, describe: e.describe, rows: opts.clients.map((clients) => ({ clients, runs: [] })), ppMs: [], ppTokens: [], ttftMs: [], rssBytes: 0, unsettled: 0 },
    ]),
  );
  const ownCpuMs = async () => {
    const bench = process.cpuUsage();
    let sum = (bench.user + bench.system) / 1000;
    for (const e of engines) sum += await e.cpuMs();
    return sum;
  };
  let otherCores: number | null = null;
  try {
    const from = { at: performance.now(), busy: machineBusyMs(), own: await ownCpuMs() };
    for (const e of engines) for (let i = 0; i < TTFT_WARMUP; i++) await e.firstToken(opts.prompt, true); // JIT, connections
    let turn = 0;
    for (let run = 0; run < opts.runs; run++) {
      for (const [row, clients] of opts.clients.entries()) {
        log(`run ${run + 1}/${opts.runs}: ${clients} client(s)`);
        for (const e of rotate(engines, turn++)) {
          results.get(e)!.rows[row]!.runs.push(await e.loop(opts.prompt, opts.maxTokens, clients, opts.windowSeconds * 1000));
          if (!(await e.settle())) results.get(e)!.unsettled++;
          await sleep(SETTLE_MS);
        }
      }
      log(`run ${run + 1}/${opts.runs}: pp${opts.ppTokens} and TTFT`);
      for (const e of rotate(engines, turn++)) {
        for (let k = 0; k < opts.ppRequests; k++) {
          const prompt = ctx.prompts[run * opts.ppRequests + k]!;
          results.get(e)!.ppMs.push(await e.firstToken(prompt.text, false));
          results.get(e)!.ppTokens.push(prompt.tokens);
          await sleep(SETTLE_MS);
        }
      }
      for (const e of rotate(engines, turn++)) {
        // The short prompt back in the cache of every sequence the side may pick.
        for (let i = 0; i < opts.parallel; i++) await e.firstToken(opts.prompt, true);
        for (let i = 0; i < opts.ttftRequests; i++) {
          results.get(e)!.ttftMs.push(await e.firstToken(opts.prompt, true));
          await sleep(TTFT_GAP_MS);
        }
        await sleep(SETTLE_MS);
      }
    }
    const busy = machineBusyMs();
    if (busy !== null && from.busy !== null) otherCores = Math.max(0, busy - from.busy - ((await ownCpuMs()) - from.own)) / (performance.now() - from.at);
    for (const e of engines) results.get(e)!.rssBytes = await e.rss();
  } finally {
    for (const e of engines) await e.close();
  }
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { setting, engines: [...results.values()], otherCores };
}

async function main(): Promise<void> {
  const parsed = parsePeerArgs(process.argv.slice(2));
  if (parsed === "help") {
    console.log(peerUsage);
    return;
  }
  const opts = parsed;
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  let bin: string | undefined;
  if (opts.engines.includes("llama-server") || opts.engines.includes("inferno-ls")) {
    const found = opts.build ? await ensureLlamaServer({ repoRoot }) : findLlamaServer({ repoRoot });
    if (!found) throw new Error("llama-server is not built: run `npm run build:llama-server`, set INFERNO_LLAMA_SERVER, or drop --no-build");
    bin = found.path;
  }
  const model = opts.model ?? (await peerBenchModel(repoRoot));
  const prompts = await preparePrompts(model, opts.prompt, opts.ppTokens, opts.runs * opts.ppRequests);
  const ctx: Context = { opts, model, bin, logDir: await mkdtemp(path.join(os.tmpdir(), "inferno-peer-")), prompts: prompts.long };
  const settings: SettingResult[] = [];
  for (const setting of opts.threadList) settings.push(await runSetting(ctx, setting));
  const report: PeerReport = {
    facts: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.availableParallelism(),
      node: process.version,
      nodeLlamaCpp: packageVersion("node-llama-cpp"),
      llamaCppTag: llamaCppTag(repoRoot),
      llamaServer: bin ? { path: bin, version: llamaServerVersion(bin) } : undefined,
      model,
      modelBytes: statSync(model).size,
      parallel: opts.parallel,
      contextSize: opts.contextSize,
      batchSize: opts.batchSize,
      maxTokens: opts.maxTokens,
      windowSeconds: opts.windowSeconds,
      runs: opts.runs,
      prompt: opts.prompt,
      promptTokens: prompts.shortTokens,
      uvThreadpoolSize: llamaProcessEnv().UV_THREADPOOL_SIZE ?? "",
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
      seconds: (performance.now() - started) / 1000,
    },
    settings,
  };
  console.log(formatPeerReport(report, opts.clients));
  console.log(`\nengines as started (threads ${formatThreads(opts.threadList[0]!)}):`);
  for (const e of settings[0]?.engines ?? []) console.log(`  ${e.engine}: ${e.describe}`);
  console.log(`logs: ${ctx.logDir}`);
  if (opts.json) {
    await writeFile(opts.json, JSON.stringify({ options: opts, ...report }, null, 2) + "\n");
    console.log(`wrote ${opts.json}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
