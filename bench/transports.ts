/**
 * Transport cost (issues #15 and #16): gRPC ModelInfer, REST KServe v2 (JSON and binary extension), the native
 * octet-stream route and IPC infer against raw session.run on mnist-8 and mobilenetv2-12-int8, and IPC,
 * ModelStreamInfer and SSE token streams against raw node-llama-cpp on GGUFs, in one run with the sides in turn.
 * Run: `npm run bench:transports -- --help`.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { repoRoot } from "./args.js";
import { MNIST, MOBILENET } from "./onnx-inputs.js";
import { packageVersion } from "./onnx-machine.js";
import { RawSession } from "./onnx-raw.js";
import { peerBenchModel } from "./peer-model.js";
import { parseTransportArgs, transportUsage, type TransportBenchOptions } from "./transport-args.js";
import { formatReport, summarize, type TransportReport } from "./transport-report.js";
import { spawnTransportServer } from "./transport-server.js";
import { streamPart } from "./transport-streams.js";
import { mnistPart, mobilenetPart } from "./transport-tensors.js";
import { quantile } from "./stats.js";

async function tensorParts(opts: TransportBenchOptions): Promise<Pick<TransportReport, "latency" | "throughput">> {
  const out: Pick<TransportReport, "latency" | "throughput"> = { latency: undefined, throughput: [] };
  const models = [...(opts.only.has("mnist") ? [MNIST] : []), ...(opts.only.has("mobilenet") ? [MOBILENET] : [])];
  if (models.length === 0) return out;
  const files = Object.fromEntries(models.map((m) => [m.name, path.join(opts.modelsDir, m.file)]));
  for (const file of Object.values(files)) if (!existsSync(file)) throw new Error(`model not found: ${file} (pass --models DIR)`);
  const server = await spawnTransportServer({ kind: "onnx", models: files, threads: opts.threads }, opts.cpuProf);
  const floor = await spawnTransportServer({ kind: "floor" });
  try {
    if (opts.only.has("mnist")) {
      const raw = await RawSession.open(files[MNIST.name]!, MNIST.input, MNIST.output, opts.threads);
      try {
        const r = await mnistPart(server, floor, raw, opts);
        out.latency = r.latency;
        out.throughput.push(r.throughput);
      } finally {
        await raw.release();
      }
    }
    if (opts.only.has("mobilenet")) {
      const raw = await RawSession.open(files[MOBILENET.name]!, MOBILENET.input, MOBILENET.output, opts.threads);
      try {
        out.throughput.push(await mobilenetPart(server, floor, raw, opts));
      } finally {
        await raw.release();
      }
    }
  } finally {
    await floor.close();
    await server.close();
  }
  return out;
}

async function main(): Promise<void> {
  const parsed = parseTransportArgs(process.argv.slice(2));
  if (parsed === "help") {
    console.log(transportUsage);
    return;
  }
  const opts = parsed;
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  const tensors = await tensorParts(opts);
  const streams = [];
  if (opts.only.has("stream")) {
    if (!existsSync(opts.gguf)) throw new Error(`model not found: ${opts.gguf} (pass --gguf PATH)`);
    streams.push(...(await streamPart(opts.gguf, opts.maxTokens, opts)));
    if (opts.with85m) streams.push(...(await streamPart(await peerBenchModel(repoRoot), opts.maxTokens85m, opts)));
  }
  const report: TransportReport = {
    facts: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.availableParallelism(),
      node: process.version,
      onnxruntimeNode: packageVersion("onnxruntime-node"),
      grpcJs: packageVersion("@grpc/grpc-js"),
      nodeLlamaCpp: packageVersion("node-llama-cpp"),
      threads: opts.threads,
      llamaThreads: opts.llamaThreads,
      clients: opts.clients,
      grpcChannels: opts.grpcChannels,
      ipcOnly: opts.ipcOnly,
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
      quick: opts.quick,
    },
    runs: opts.runs,
    durationS: opts.durationS,
    warmupS: opts.warmupS,
    streamRuns: opts.streamRuns,
    ...tensors,
    streams,
  };
  console.log(formatReport(report));
  console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (opts.json) {
    // Throughput windows hold thousands of latencies each: the JSON keeps their count and percentiles instead.
    const throughput = report.throughput.map((t) => ({
      ...t,
      sides: t.sides.map((s) => ({
        ...s,
        runs: s.runs.map(({ latenciesMs, ...run }) => ({ ...run, requests: latenciesMs.length, p50_ms: quantile(latenciesMs, 0.5), p99_ms: quantile(latenciesMs, 0.99) })),
      })),
    }));
    await writeFile(opts.json, JSON.stringify({ ...report, throughput, summary: summarize(report) }, null, 2) + "\n");
    console.log(`wrote ${opts.json}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
