import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The repository root (this file runs from dist/bench/). */
export const repoRoot = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");

export interface BenchOptions {
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
}

export const usage = `usage: node dist/bench/decode.js [options]
  --threads N        llama.cpp threads on both sides (default 1; never more than the cores)
  --model PATH       GGUF file (default ../shared/models/stories260K.gguf beside the repo)
  --runs N           measured runs per side and scenario, reported as the median (default 5)
  --json PATH        also write the results as JSON
  --max-tokens N     tokens per stream (default 1000)
  --run-seconds S    lower max-tokens so that one run takes about S seconds on this machine (default 4)
  --streams N        concurrent streams of the batched scenario (default 8)
  --ttft-requests N  requests per side for time to first token (default 100)
  --context-size N   context per sequence on both sides (default 2048)
  --prompt TEXT      prompt (default "Once upon a time")`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

export function parseBenchArgs(argv: string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
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
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const runSeconds = Number(values["run-seconds"] ?? 4);
  if (!(runSeconds > 0)) throw new Error(`--run-seconds must be a positive number, got "${values["run-seconds"]}"`);
  return {
    threads: positiveInt("threads", values.threads, 1),
    model: path.resolve(values.model ?? path.join(repoRoot, "../shared/models/stories260K.gguf")),
    runs: positiveInt("runs", values.runs, 5),
    json: values.json,
    maxTokens: positiveInt("max-tokens", values["max-tokens"], 1000),
    runSeconds,
    streams: positiveInt("streams", values.streams, 8),
    ttftRequests: positiveInt("ttft-requests", values["ttft-requests"], 100),
    contextSize: positiveInt("context-size", values["context-size"], 2048),
    batchSize: 512,
    prompt: values.prompt ?? "Once upon a time",
  };
}
