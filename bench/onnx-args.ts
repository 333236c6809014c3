import path from "node:path";
import { parseArgs } from "node:util";
import { defaultThreads } from "../src/config/config.js";
import { repoRoot } from "./args.js";

export interface OnnxBenchOptions {
  modelsDir: string;
  /** onnxruntime intra-op threads on both sides (Inferno's default: cores − 1). */
  threads: number;
  /** Measured runs per throughput configuration, reported as the median. */
  runs: number;
  /** Seconds of one measured throughput window. */
  durationS: number;
  /** Seconds of load before each window, so that queues and batches are at steady state when it opens. */
  warmupS: number;
  clients: number;
  mnistRequests: number;
  mobilenetRequests: number;
  /** Where the load generator runs: a forked child process (default) or the server's own process. */
  client: "child" | "inprocess";
  breakdown: boolean;
  json: string | undefined;
}

export const onnxUsage = `usage: node dist/bench/onnx.js [options]
  --models DIR              folder holding mnist-8.onnx and mobilenetv2-12-int8.onnx (default ../shared/models)
  --threads N               onnxruntime intra-op threads, raw and Inferno alike (default cores − 1, Inferno's default)
  --runs N                  measured runs per throughput configuration, reported as the median (default 3)
  --duration S              seconds of one measured throughput window (default 3)
  --warmup S                seconds of load before each window opens (default 0.5)
  --clients N               concurrent clients of the throughput runs (default 32)
  --mnist-requests N        sequential requests per side for mnist latency (default 300)
  --mobilenet-requests N    sequential requests per side for mobilenet latency (default 60)
  --client child|inprocess  where the throughput load generator runs (default child: a forked process)
  --skip-breakdown          leave out the per-stage cost breakdown
  --json PATH               also write the results as JSON`;

export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

export function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`--${name} must be a positive number, got "${value}"`);
  return n;
}

export function parseOnnxBenchArgs(argv: string[]): OnnxBenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      models: { type: "string" },
      threads: { type: "string" },
      runs: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      clients: { type: "string" },
      "mnist-requests": { type: "string" },
      "mobilenet-requests": { type: "string" },
      client: { type: "string" },
      "skip-breakdown": { type: "boolean" },
      json: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const client = values.client ?? "child";
  if (client !== "child" && client !== "inprocess") throw new Error(`--client must be child or inprocess, got "${client}"`);
  return {
    modelsDir: path.resolve(values.models ?? path.join(repoRoot, "../shared/models")),
    threads: positiveInt("threads", values.threads, defaultThreads()),
    runs: positiveInt("runs", values.runs, 3),
    durationS: positiveNumber("duration", values.duration, 3),
    warmupS: positiveNumber("warmup", values.warmup, 0.5),
    clients: positiveInt("clients", values.clients, 32),
    mnistRequests: positiveInt("mnist-requests", values["mnist-requests"], 300),
    mobilenetRequests: positiveInt("mobilenet-requests", values["mobilenet-requests"], 60),
    client,
    breakdown: values["skip-breakdown"] !== true,
    json: values.json,
  };
}
