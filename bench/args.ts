import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { defaultThreads } from "../src/config/config.js";

/** The repository root (this file runs from dist/bench/). */
export const repoRoot = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");

export const SCENARIOS = ["single", "streams", "ttft", "clients", "threads", "burst"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  quick: boolean;
  /** The parts to run (all by default). */
  only: Set<Scenario>;
  /** Where the Inferno side's HTTP client runs: in the server's process, or in the bench's (a separate process). */
  client: "server" | "separate";
  threads: number;
  model: string;
  runs: number;
  json: string | undefined;
  /** Tokens per stream; lowered when the backend is too slow to finish a run in runSeconds. */
  maxTokens: number;
  runSeconds: number;
  streams: number;
  ttftRequests: number;
  contextSize: number;
  batchSize: number;
  prompt: string;
  /** Client counts of the load curve, and the server's parallel sequences while it runs. */
  clients: number[];
  parallel: number;
  curveTokens: number;
  /** Length of each load-curve point's measured window, after a warm-up that fills the queue. */
  curveSeconds: number;
  curveRuns: number;
  /** llama.cpp thread counts of the thread curve, and the tokens per stream it generates. */
  threadList: number[];
  threadTokens: number;
  threadRuns: number;
  /** Client counts of the burst curve, the tokens each asks for, and the server's queueSize (undefined: Inferno's default). */
  bursts: number[];
  burstTokens: number;
  burstQueue: number | undefined;
}

export const usage = `usage: node dist/bench/decode.js [options]
  --quick            a short run (about a minute): fewer runs, shorter streams, no 4-thread point
  --only LIST       run only these parts: ${SCENARIOS.join(",")} (default: all)
  --client WHERE     where the HTTP client runs: "separate" (the bench's process, default) or "server" (inside the server's process)
  --threads N        llama.cpp threads on both sides (default: Inferno's default, cores − 1)
  --model PATH       GGUF file (default ../shared/models/stories260K.gguf beside the repo)
  --runs N           measured runs per side and scenario, reported as the median (default 5; quick 3)
  --json PATH        also write the results as JSON
  --max-tokens N     tokens per stream (default 1000; quick 300)
  --run-seconds S    lower max-tokens so that one run takes about S seconds on this machine (default 4; quick 1.5)
  --streams N        concurrent streams of the batched scenario (default 8)
  --ttft-requests N  requests per side for time to first token (default 100; quick 40)
  --context-size N   context per sequence on both sides (default 2048)
  --prompt TEXT      prompt (default "Once upon a time")
  --clients LIST     client counts of the load curve (default 1,2,4,8,16,32,64)
  --parallel N       the server's sequences during the load curve (default 4, Inferno's default)
  --curve-tokens N   max_tokens of each load-curve request (default 100)
  --curve-seconds S  measured window of each load-curve point (default 2; quick 1)
  --curve-runs N     runs of the whole load curve (default 3; quick 1)
  --thread-list LIST llama.cpp threads of the thread curve (default 1..cores and 2 × cores; quick 1..cores)
  --thread-tokens N  tokens per stream in the thread curve, cut short at --run-seconds (default 256)
  --thread-runs N    runs per point of the thread curve (default 3; quick 1)
  --bursts LIST      clients that send at once in each burst, to a server with --parallel sequences (default 100,300,600,1000; quick 100,300,600)
  --burst-tokens N   max_tokens of each burst request (default 32; quick 16)
  --burst-queue N    the burst server's queueSize (default: Inferno's default)`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

function intList(name: string, value: string | undefined, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  return value.split(",").map((v) => positiveInt(name, v.trim(), 0));
}

export function parseBenchArgs(argv: string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean" },
      only: { type: "string" },
      client: { type: "string" },
      threads: { type: "string" },
      model: { type: "string" },
      runs: { type: "string" },
      json: { type: "string" },
      "max-tokens": { type: "string" },
      "run-seconds": { type: "string" },
      streams: { type: "string" },
      "ttft-requests": { type: "string" },
      "context-size": { type: "string" },
      prompt: { type: "string" },
      clients: { type: "string" },
      parallel: { type: "string" },
      "curve-tokens": { type: "string" },
      "curve-seconds": { type: "string" },
      "curve-runs": { type: "string" },
      "thread-list": { type: "string" },
      "thread-tokens": { type: "string" },
      "thread-runs": { type: "string" },
      bursts: { type: "string" },
      "burst-tokens": { type: "string" },
      "burst-queue": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const quick = values.quick === true;
  const runSeconds = Number(values["run-seconds"] ?? (quick ? 1.5 : 4));
  if (!(runSeconds > 0)) throw new Error(`--run-seconds must be a positive number, got "${values["run-seconds"]}"`);
  const curveSeconds = Number(values["curve-seconds"] ?? (quick ? 1 : 2));
  if (!(curveSeconds > 0)) throw new Error(`--curve-seconds must be a positive number, got "${values["curve-seconds"]}"`);
  const cores = os.availableParallelism();
  const upToCores = Array.from({ length: cores }, (_, i) => i + 1);
  const client = values.client ?? "separate";
  if (client !== "server" && client !== "separate") throw new Error(`--client must be "server" or "separate", got "${client}"`);
  const only = new Set((values.only ?? SCENARIOS.join(",")).split(",").map((v) => v.trim()));
  const unknown = [...only].filter((v) => !(SCENARIOS as readonly string[]).includes(v));
  if (unknown.length > 0) throw new Error(`--only takes ${SCENARIOS.join(", ")}; got "${unknown.join(", ")}"`);
  return {
    quick,
    only: only as Set<Scenario>,
    client,
    threads: positiveInt("threads", values.threads, defaultThreads()),
    model: path.resolve(values.model ?? path.join(repoRoot, "../shared/models/stories260K.gguf")),
    runs: positiveInt("runs", values.runs, quick ? 3 : 5),
    json: values.json,
    maxTokens: positiveInt("max-tokens", values["max-tokens"], quick ? 300 : 1000),
    runSeconds,
    streams: positiveInt("streams", values.streams, 8),
    ttftRequests: positiveInt("ttft-requests", values["ttft-requests"], quick ? 40 : 100),
    contextSize: positiveInt("context-size", values["context-size"], 2048),
    batchSize: 512,
    prompt: values.prompt ?? "Once upon a time",
    clients: intList("clients", values.clients, [1, 2, 4, 8, 16, 32, 64]),
    parallel: positiveInt("parallel", values.parallel, 4),
    curveTokens: positiveInt("curve-tokens", values["curve-tokens"], 100),
    curveSeconds,
    curveRuns: positiveInt("curve-runs", values["curve-runs"], quick ? 1 : 3),
    threadList: intList("thread-list", values["thread-list"], quick ? upToCores : [...upToCores, 2 * cores]),
    threadTokens: positiveInt("thread-tokens", values["thread-tokens"], 256),
    threadRuns: positiveInt("thread-runs", values["thread-runs"], quick ? 1 : 3),
    bursts: intList("bursts", values.bursts, quick ? [100, 300, 600] : [100, 300, 600, 1000]),
    burstTokens: positiveInt("burst-tokens", values["burst-tokens"], quick ? 16 : 32),
    burstQueue: values["burst-queue"] === undefined ? undefined : positiveInt("burst-queue", values["burst-queue"], 0),
  };
}
