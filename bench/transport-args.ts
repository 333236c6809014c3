import path from "node:path";
import { parseArgs } from "node:util";
import { defaultThreads } from "../src/config/config.js";
import { repoRoot } from "./args.js";
import { positiveInt, positiveNumber } from "./onnx-args.js";

export const PARTS = ["mnist", "mobilenet", "stream"] as const;
export type Part = (typeof PARTS)[number];
/** What --only takes: the parts, and "ipc" (only raw and the IPC sides; mnist and stream unless other parts are named). */
const ONLY = [...PARTS, "ipc"] as const;

export interface TransportBenchOptions {
  quick: boolean;
  only: Set<Part>;
  /** Only raw and the IPC sides (issue #16's comparison). */
  ipcOnly: boolean;
  /** Only raw and these tensor sides (names as in SIDE_LABELS), if given. */
  sides: Set<string> | undefined;
  modelsDir: string;
  /** The GGUF of the streaming part. */
  gguf: string;
  /** Also stream on the 85M random-weight bench model (generated once by peer-model.ts). */
  with85m: boolean;
  /** Tokens per stream on the 85M model. */
  maxTokens85m: number;
  /** onnxruntime intra-op threads, every side alike (Inferno's default: cores − 1). */
  threads: number;
  /** llama.cpp threads, every side alike (Inferno's default: every core with the thread-pool addon, else cores − 1). */
  llamaThreads: number;
  /** Rounds of each ONNX scenario; figures are medians over them. */
  runs: number;
  durationS: number;
  warmupS: number;
  clients: number;
  /** gRPC channels (HTTP/2 connections) the concurrent clients share. */
  grpcChannels: number;
  /** Sequential mnist requests per side and round. */
  latencyRequests: number;
  /** Rounds of each streaming scenario (one stream takes a fraction of a second, so more of them). */
  streamRuns: number;
  streams: number;
  maxTokens: number;
  /** Where the Inferno server children write V8 CPU profiles (node --cpu-prof), if anywhere. */
  cpuProf: string | undefined;
  json: string | undefined;
}

export const transportUsage = `usage: node dist/bench/transports.js [options]
  --quick               a smoke run (about a minute): 1 round, 1 s windows, 100 latency requests, 3 stream rounds of
                        128 tokens, no 85M model
  --only LIST           parts to run: ${PARTS.join(",")} (default: all); "ipc" runs only raw and the IPC sides, of mnist
                        and stream unless other parts are named
  --runs N              rounds of each ONNX scenario, reported as the median (default 3; quick 1)
  --duration S          seconds of one measured throughput window (default 3; quick 1)
  --warmup S            seconds of load before each window opens (default 0.5; quick 0.3)
  --clients N           concurrent clients of the throughput scenarios (default 32)
  --grpc-channels N     gRPC channels those clients share, client i on channel i mod N (default 1: one client object, as a Node app keeps one)
  --latency-requests N  sequential mnist requests per side and round (default 300; quick 100)
  --stream-runs N       rounds of each streaming scenario (default 9; quick 3)
  --streams N           concurrent streams of the batched streaming scenario, and the server's parallel (default 8)
  --max-tokens N        tokens per stream on --gguf (default 256; quick 128)
  --max-tokens-85m N    tokens per stream on the 85M model (default 128)
  --sides LIST          only raw and these tensor sides: kserve-binary, kserve-json, octet, grpc, grpcio, ipc, ipc-conns,
                        ipc-raw, grpc-floor, grpcio-floor, http-floor, ipc-floor, ipc-raw-floor (default: every side; the
                        grpcio sides need a python3 with grpcio: Debian's python3-grpcio, or $INFERNO_BENCH_PYTHON)
  --threads N           onnxruntime intra-op threads on every side (default cores − 1, Inferno's default)
  --llama-threads N     llama.cpp threads on every side (default: Inferno's, every core with the thread-pool addon)
  --models DIR          folder holding mnist-8.onnx and mobilenetv2-12-int8.onnx (default ../shared/models)
  --gguf PATH           GGUF of the streaming part (default ../shared/models/stories260K.gguf)
  --with-85m            also stream on the 85M random-weight bench model (generated into the cache once, 87 MiB);
                        the default except with --quick
  --without-85m         stream on --gguf only
  --cpu-prof DIR        the Inferno server children write V8 CPU profiles into DIR (node --cpu-prof) when they close
  --json PATH           also write the results as JSON`;

export function parseTransportArgs(argv: string[]): TransportBenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean" },
      only: { type: "string" },
      runs: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      clients: { type: "string" },
      "grpc-channels": { type: "string" },
      "latency-requests": { type: "string" },
      "stream-runs": { type: "string" },
      streams: { type: "string" },
      "max-tokens": { type: "string" },
      "max-tokens-85m": { type: "string" },
      sides: { type: "string" },
      threads: { type: "string" },
      "llama-threads": { type: "string" },
      models: { type: "string" },
      gguf: { type: "string" },
      "with-85m": { type: "boolean" },
      "without-85m": { type: "boolean" },
      "cpu-prof": { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const quick = values.quick === true;
  const only = new Set((values.only ?? PARTS.join(",")).split(",").map((v) => v.trim()));
  const unknown = [...only].filter((v) => !(ONLY as readonly string[]).includes(v));
  if (unknown.length > 0) throw new Error(`--only takes ${ONLY.join(", ")}; got "${unknown.join(", ")}"`);
  const ipcOnly = only.delete("ipc");
  if (ipcOnly && only.size === 0) only.add("mnist").add("stream");
  if (values["with-85m"] && values["without-85m"]) throw new Error("--with-85m and --without-85m contradict each other");
  return {
    quick,
    only: only as Set<Part>,
    ipcOnly,
    modelsDir: path.resolve(values.models ?? path.join(repoRoot, "../shared/models")),
    gguf: path.resolve(values.gguf ?? path.join(repoRoot, "../shared/models/stories260K.gguf")),
    with85m: values["with-85m"] === true || (!quick && values["without-85m"] !== true),
    maxTokens85m: positiveInt("max-tokens-85m", values["max-tokens-85m"], 128),
    sides: values.sides === undefined ? undefined : new Set(values.sides.split(",").map((v) => v.trim())),
    threads: positiveInt("threads", values.threads, defaultThreads(undefined, false)),
    llamaThreads: positiveInt("llama-threads", values["llama-threads"], defaultThreads()),
    runs: positiveInt("runs", values.runs, quick ? 1 : 3),
    durationS: positiveNumber("duration", values.duration, quick ? 1 : 3),
    warmupS: positiveNumber("warmup", values.warmup, quick ? 0.3 : 0.5),
    clients: positiveInt("clients", values.clients, 32),
    grpcChannels: positiveInt("grpc-channels", values["grpc-channels"], 1),
    latencyRequests: positiveInt("latency-requests", values["latency-requests"], quick ? 100 : 300),
    streamRuns: positiveInt("stream-runs", values["stream-runs"], quick ? 3 : 9),
    streams: positiveInt("streams", values.streams, 8),
    maxTokens: positiveInt("max-tokens", values["max-tokens"], quick ? 128 : 256),
    cpuProf: values["cpu-prof"] === undefined ? undefined : path.resolve(values["cpu-prof"]),
    json: values.json,
  };
}
