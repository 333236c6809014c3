import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultBatchThreads, defaultThreads } from "../src/config/config.js";

/** The sides of the peer bench: llama.cpp's server, node-llama-cpp driven directly, Inferno, Inferno on its llama-server engine. */
export const ENGINES = ["llama-server", "raw", "inferno", "inferno-ls"] as const;
export type EngineName = (typeof ENGINES)[number];

/** llama.cpp threads for one-token batches, and for larger ones (prompts, several sequences). */
export interface ThreadSetting {
  threads: number;
  batchThreads: number;
  /** Inferno with no thread settings (its defaults, measured at load: thread-tuning.ts); the other engines at `threads`. */
  auto?: boolean;
}

/** "2" is 2 threads for every batch; "1/2" is 1 thread for one-token batches and 2 for larger ones. */
export const formatThreads = (t: ThreadSetting): string =>
  t.auto ? "auto" : t.threads === t.batchThreads ? String(t.threads) : `${t.threads}/${t.batchThreads}`;

export interface PeerOptions {
  quick: boolean;
  /** Thread settings; every engine runs at each. */
  threadList: ThreadSetting[];
  /** A GGUF file, or undefined for the generated 85M bench model. */
  model: string | undefined;
  engines: EngineName[];
  runs: number;
  json: string | undefined;
  /** Closed-loop client counts, against `parallel` sequences (the rest wait in the queue). */
  clients: number[];
  parallel: number;
  maxTokens: number;
  /** Context per sequence. */
  contextSize: number;
  batchSize: number;
  /** Measured window of each closed loop, in seconds (after a 0.4 s warm-up). */
  windowSeconds: number;
  prompt: string;
  ttftRequests: number;
  /** Prompt length for prompt processing, BOS included, and the uncached requests per run. */
  ppTokens: number;
  ppRequests: number;
  /** Build llama-server when it is missing (else fail). */
  build: boolean;
  /** Inferno's config streamIntervalMs (both of its engines); undefined: its default. */
  streamIntervalMs: number | undefined;
}

export const peerUsage = `usage: node dist/bench/peer.js [options]   (npm run bench:peer -- [options])
  --quick             about 75 s on 2 cores: 1 run, 0.8 s windows, 15 TTFT requests, 1 long prompt
  --thread-list LIST  llama.cpp thread settings, each engine at each (default: 1, all cores, one core
                      left for one-token batches, and auto; on 2 cores 1,2,1/2,auto): T is T threads for every
                      batch; T/B is T for one-token batches and B for larger ones (prompts, several sequences):
                      llama-server -t T -tb B, Inferno threads T and batchThreads B, raw node-llama-cpp with
                      Inferno's per-batch switch; auto is Inferno with no thread settings (its defaults,
                      measured at load for a small model) and the other engines at every core
  --model PATH        GGUF file (default: the generated 85M Q8_0 bench model, in the cache dir)
  --engines LIST      any of ${ENGINES.join(",")} (default: all four; inferno-ls is
                      Inferno with --gguf-engine llama-server)
  --runs N            runs per engine and row, alternating engines; medians reported (default 3; quick 1)
  --json PATH         also write every sample as JSON
  --clients LIST      closed-loop clients per row (default 1,8,32)
  --parallel N        sequences / slots of every server (default 8)
  --max-tokens N      tokens per request, ignore_eos on every side (default 128)
  --context-size N    context per sequence (default 1024; llama-server gets parallel × this)
  --window S          measured seconds of each closed loop (default 1.5; quick 0.8)
  --prompt TEXT       the short prompt of the load rows and TTFT (default "Once upon a time")
  --ttft-requests N   short cached requests per engine and run for TTFT (default 30; quick 15)
  --pp-tokens N       prompt-processing prompt length, BOS included (default 512)
  --pp-requests N     uncached long prompts per engine and run (default 2; quick 1)
  --no-build          fail instead of building llama-server when it is missing
  --stream-interval-ms MS  Inferno's streamIntervalMs (default: Inferno's default, auto): a stream's tokens
                      after its first sent in groups at most this often (0: each at once)
  environment: INFERNO_LLAMA_SERVER (a llama-server binary to use instead of the built one),
  INFERNO_CACHE_DIR (where the build and the bench model are cached)`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

function threadList(value: string | undefined, fallback: ThreadSetting[], cores = os.availableParallelism()): ThreadSetting[] {
  if (value === undefined) return fallback;
  return value.split(",").map((item) => {
    if (item.trim() === "auto") return autoSetting(cores);
    const [t, b, ...rest] = item.trim().split("/");
    if (rest.length > 0) throw new Error(`--thread-list takes T or T/B, got "${item}"`);
    const threads = positiveInt("thread-list", t, 0);
    return { threads, batchThreads: b === undefined ? threads : positiveInt("thread-list", b, 0) };
  });
}

export function nonNegativeInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, 0 or more, got "${value}"`);
  return n;
}

function intList(name: string, value: string | undefined, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  return value.split(",").map((v) => positiveInt(name, v.trim(), 0));
}

const autoSetting = (cores: number): ThreadSetting => ({ threads: cores, batchThreads: cores, auto: true });

/**
 * 1 thread, every core, one core left for one-token batches (Inferno's default with node-llama-cpp's
 * prebuilt addon), Inferno's default thread counts, without repeats, and auto with more than one core (on 2
 * cores: 1, 2, 1/2, auto).
 */
export function defaultThreadList(cores = os.availableParallelism()): ThreadSetting[] {
  const list = [
    { threads: 1, batchThreads: 1 },
    { threads: cores, batchThreads: cores },
    { threads: defaultThreads(cores, false), batchThreads: defaultBatchThreads(cores) },
    { threads: defaultThreads(cores), batchThreads: defaultBatchThreads(cores) },
  ];
  const fixed = list.filter((t, i) => list.findIndex((u) => u.threads === t.threads && u.batchThreads === t.batchThreads) === i);
  return cores > 1 ? [...fixed, autoSetting(cores)] : fixed; // one core: nothing for auto to choose
}

export function parsePeerArgs(argv: string[]): PeerOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean" },
      "thread-list": { type: "string" },
      model: { type: "string" },
      engines: { type: "string" },
      runs: { type: "string" },
      json: { type: "string" },
      clients: { type: "string" },
      parallel: { type: "string" },
      "max-tokens": { type: "string" },
      "context-size": { type: "string" },
      window: { type: "string" },
      prompt: { type: "string" },
      "ttft-requests": { type: "string" },
      "pp-tokens": { type: "string" },
      "pp-requests": { type: "string" },
      "no-build": { type: "boolean" },
      "stream-interval-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const quick = values.quick === true;
  const windowSeconds = Number(values.window ?? (quick ? 0.8 : 1.5));
  if (!(windowSeconds > 0)) throw new Error(`--window must be a positive number of seconds, got "${values.window}"`);
  const engines = (values.engines ?? ENGINES.join(",")).split(",").map((e) => e.trim());
  const unknown = engines.filter((e) => !(ENGINES as readonly string[]).includes(e));
  if (unknown.length > 0) throw new Error(`--engines takes ${ENGINES.join(", ")}; got "${unknown.join(", ")}"`);
  const maxTokens = positiveInt("max-tokens", values["max-tokens"], 128);
  const ppTokens = positiveInt("pp-tokens", values["pp-tokens"], 512);
  const contextSize = positiveInt("context-size", values["context-size"], 1024);
  if (contextSize < ppTokens + 1 || contextSize < maxTokens + 16) {
    throw new Error(`--context-size ${contextSize} is too small for --pp-tokens ${ppTokens} and --max-tokens ${maxTokens}`);
  }
  return {
    quick,
    threadList: threadList(values["thread-list"], defaultThreadList()),
    model: values.model === undefined ? undefined : path.resolve(values.model),
    engines: ENGINES.filter((e) => engines.includes(e)),
    runs: positiveInt("runs", values.runs, quick ? 1 : 3),
    json: values.json,
    clients: intList("clients", values.clients, [1, 8, 32]),
    parallel: positiveInt("parallel", values.parallel, 8),
    maxTokens,
    contextSize,
    batchSize: Math.min(512, contextSize),
    windowSeconds,
    prompt: values.prompt ?? "Once upon a time",
    ttftRequests: positiveInt("ttft-requests", values["ttft-requests"], quick ? 15 : 30),
    ppTokens,
    ppRequests: positiveInt("pp-requests", values["pp-requests"], quick ? 1 : 2),
    build: values["no-build"] !== true,
    streamIntervalMs: values["stream-interval-ms"] === undefined ? undefined : nonNegativeInt("stream-interval-ms", values["stream-interval-ms"]),
  };
}
