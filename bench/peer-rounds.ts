/**
 * Many short alternating rounds of llama-server against Inferno, nothing else between them: the way to tell a few
 * percent apart on a machine whose speed drifts by more than that from minute to minute (`npm run bench:peer`
 * spends most of its time on other rows and settings). Each round runs a closed loop of `--clients` streams on
 * one side for `--window` seconds, then on the other, the order alternating; it prints every round's tokens/s,
 * the ratio of the medians, the median and geometric mean of the round-by-round ratios, and each server's CPU
 * time per token (all its threads, spinning llama.cpp threads included).
 * Run: `npx tsc -p . && node dist/bench/peer-rounds.js [--rounds 30] [--window 3] [--clients 1] [--threads 2]
 * [--model PATH] [--stream-interval-ms MS]`. Needs llama-server (`npm run build:llama-server`).
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ensureLlamaServer } from "../src/runtimes/llama-server/llama-server-bin.js";
import { repoRoot } from "./args.js";
import { nonNegativeInt } from "./peer-args.js";
import { startInfernoEngine, startLlamaServerEngine, type PeerEngine } from "./peer-engines.js";
import { peerBenchModel } from "./peer-model.js";
import { rotate } from "./rotate.js";
import { median } from "./stats.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "30" },
    window: { type: "string", default: "3" },
    clients: { type: "string", default: "1" },
    threads: { type: "string", default: String(os.availableParallelism()) },
    model: { type: "string" },
    prompt: { type: "string", default: "Once upon a time" },
    "max-tokens": { type: "string", default: "128" },
    "stream-interval-ms": { type: "string" },
  },
});
const count = (name: keyof typeof values) => {
  const n = Number(values[name]);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got "${values[name]}"`);
  return n;
};
const rounds = count("rounds");
const windowMs = count("window") * 1000;
const clients = count("clients");
const threads = count("threads");
const maxTokens = count("max-tokens");

const found = await ensureLlamaServer({ repoRoot });
const modelPath = values.model ?? (await peerBenchModel(repoRoot));
const interval = values["stream-interval-ms"] === undefined ? undefined : nonNegativeInt("stream-interval-ms", values["stream-interval-ms"]);
const settings = { modelPath, threads, batchThreads: threads, parallel: 8, contextSize: 1024, batchSize: 512, ...(interval !== undefined ? { streamIntervalMs: interval } : {}) };
const logDir = await mkdtemp(path.join(os.tmpdir(), "inferno-rounds-"));
const engines: Array<{ name: string; engine: PeerEngine }> = [
  { name: "llama-server", engine: await startLlamaServerEngine(found.path, settings, logDir) },
  { name: "Inferno", engine: await startInfernoEngine(settings) },
];
/** One round of a side: its rate and its server's CPU time a token. */
const round = async ({ name, engine }: (typeof engines)[number]): Promise<{ rate: number; cpuPerToken: number }> => {
  const cpuBefore = await engine.cpuMs();
  const started = performance.now();
  const { rate } = await engine.loop(values.prompt!, maxTokens, clients, windowMs);
  const seconds = (performance.now() - started) / 1000;
  const cpuPerToken = ((await engine.cpuMs()) - cpuBefore) / (rate * seconds);
  if (!(await engine.settle())) process.stderr.write(`${name}: requests still running 10 s after a round\n`);
  return { rate, cpuPerToken };
};
let results: Array<Array<{ rate: number; cpuPerToken: number }>>;
try {
  for (const { engine } of engines) await engine.loop(values.prompt!, maxTokens, clients, 500); // JIT, connections, caches
  results = await rotate(rounds, engines.map((side) => () => round(side)), 300);
} finally {
  for (const { engine } of engines) await engine.close();
}
const sides = engines.map((side, i) => ({ name: side.name, rates: results[i]!.map((r) => r.rate), cpuPerToken: results[i]!.map((r) => r.cpuPerToken) }));

const [peer, inferno] = sides as [(typeof sides)[0], (typeof sides)[0]];
const ratios = inferno.rates.map((rate, i) => rate / peer.rates[i]!);
const geomean = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
console.log(`${os.cpus()[0]?.model ?? "cpu"}, ${os.availableParallelism()} cores; ${path.basename(modelPath)}; ${clients} client(s), ${maxTokens} tokens a request, threads ${threads}${interval !== undefined ? `, Inferno streamIntervalMs ${interval}` : ""}; ${rounds} rounds of ${windowMs / 1000} s each side`);
for (const side of sides) {
  console.log(`${side.name.padEnd(12)} tok/s ${side.rates.map((r) => r.toFixed(0)).join(" ")}`);
  console.log(`${"".padEnd(12)} median ${median(side.rates).toFixed(1)} tok/s, CPU ${median(side.cpuPerToken).toFixed(2)} ms a token (all threads)`);
}
console.log(
  `Inferno / llama-server: ${(median(inferno.rates) / median(peer.rates)).toFixed(3)}× (medians), round by round ${median(ratios).toFixed(3)}× (median) ${geomean.toFixed(3)}× (geometric mean), Inferno ahead in ${ratios.filter((r) => r >= 1).length} of ${rounds}`,
);
console.log(`logs: ${logDir}`);
