/**
 * What OTLP trace export costs a generation: two Inferno servers on the same model, threads and
 * context, one exporting its spans over OTLP/HTTP to a local sink (config otlpEndpoint), one not (its
 * spans go to the in-memory ring only, as they always do), compared run by run, alternating which goes first.
 * Run: `npm run build && node dist/bench/tracing.js [--runs 7] [--max-tokens 256] [--streams 8] [--ttft-requests 50] [--json FILE]`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { defaultThreads } from "../src/config/config.js";
import { repoRoot } from "./args.js";
import { spawnServer, type ChildServer } from "./inferno-server.js";
import { streamAgent, streamConcurrently, streamInference, type StreamRequest } from "./sse-client.js";
import { aggregateRate, decodeRate, median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string" },
    runs: { type: "string", default: "7" },
    "max-tokens": { type: "string", default: "256" },
    streams: { type: "string", default: "8" },
    "ttft-requests": { type: "string", default: "50" },
    json: { type: "string" },
  },
});
const int = (name: string, v: string | undefined, fallback: number) => {
  const n = Number(v ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a positive integer`);
  return n;
};
const opts = {
  model: path.resolve(values.model ?? path.join(repoRoot, "../shared/models/stories260K.gguf")),
  threads: int("threads", values.threads, defaultThreads()),
  runs: int("runs", values.runs, 7),
  maxTokens: int("max-tokens", values["max-tokens"], 256),
  streams: int("streams", values.streams, 8),
  ttftRequests: int("ttft-requests", values["ttft-requests"], 50),
};

/** A collector that accepts every export and counts it, so the exporting side does the whole job. */
async function startSink() {
  const seen = { requests: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on("data", (c: Buffer) => (seen.bytes += c.length));
    req.on("end", () => {
      seen.requests++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

interface Side {
  name: "off" | "otlp";
  server: ChildServer;
  single: number[];
  streams: number[];
  ttft: number[];
}

const sink = await startSink();
const base = { modelPath: opts.model, threads: opts.threads, parallel: opts.streams, contextSize: 2048, batchSize: 512 };
const sides: Side[] = [
  { name: "off", server: await spawnServer({ kind: "inferno", opts: base }), single: [], streams: [], ttft: [] },
  { name: "otlp", server: await spawnServer({ kind: "inferno", opts: { ...base, otlpEndpoint: sink.url } }), single: [], streams: [], ttft: [] },
];
const agent = streamAgent(64);
const prompt = "Once upon a time";
try {
  const req = (side: Side, maxTokens: number): StreamRequest => ({ model: side.server.modelId, prompt, maxTokens, ignoreEos: true });
  for (const side of sides) await streamInference(agent, side.server.url, req(side, 8)); // loads the model
  for (let run = 0; run < opts.runs; run++) {
    // Alternate which side goes first, so neither always runs on a warmer machine.
    const order = run % 2 ? [...sides].reverse() : sides;
    for (const side of order) {
      side.single.push(decodeRate(await streamInference(agent, side.server.url, req(side, opts.maxTokens))));
      await sleep(100);
      side.streams.push(aggregateRate(await streamConcurrently(agent, side.server.url, req(side, opts.maxTokens), opts.streams)));
      await sleep(100);
      for (let i = 0; i < Math.ceil(opts.ttftRequests / opts.runs); i++) {
        const t = await streamInference(agent, side.server.url, req(side, 1));
        side.ttft.push(t.firstTokenMs - t.startMs);
        await sleep(10);
      }
    }
  }
  await sleep(1500); // the exporter's last batch (every second) reaches the sink
  const [off, otlp] = sides as [Side, Side];
  const report = {
    machine: { cpus: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version },
    model: path.basename(opts.model),
    threads: opts.threads,
    runs: opts.runs,
    maxTokens: opts.maxTokens,
    streams: opts.streams,
    sides: Object.fromEntries(
      sides.map((s) => [s.name, { decodeTokPerS: median(s.single), aggregateTokPerS: median(s.streams), ttftP50Ms: median(s.ttft), ttftP99Ms: quantile(s.ttft, 0.99) }]),
    ),
    ratios: {
      decode: median(otlp.single) / median(off.single),
      aggregate: median(otlp.streams) / median(off.streams),
      ttftP50: median(otlp.ttft) / median(off.ttft),
    },
    sink: sink.seen,
  };
  console.log(JSON.stringify(report, null, 2));
  if (sink.seen.requests === 0) console.error("warning: the sink received no export; the otlp side did not export");
  if (values.json) await writeFile(values.json, JSON.stringify(report, null, 2));
} finally {
  agent.destroy();
  for (const side of sides) await side.server.close();
  await sink.close();
}
