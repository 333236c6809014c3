/**
 * ONNX serving cost: p50/p99 latency of Inferno's tensor routes against onnxruntime-node's session.run in this
 * process (the overhead in µs), and throughput with concurrent clients, with and without dynamic batching, on
 * mnist-8.onnx and mobilenetv2-12-int8.onnx. Run: `npx tsc -p . && node dist/bench/onnx.js --help`.
 */
import { existsSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventLoopUtilization } from "node:perf_hooks";
import type { TensorSpec } from "../src/runtimes/onnx/tensor-codec.js";
import { onnxUsage, parseOnnxBenchArgs, type OnnxBenchOptions } from "./onnx-args.js";
import { breakdown, type Breakdown } from "./onnx-breakdown.js";
import { MNIST, MOBILENET, prepareRequest, sampleInput, type BenchModel, type InputForm, type PreparedRequest } from "./onnx-inputs.js";
import { latency } from "./onnx-latency.js";
import { machineBusyMs, packageVersion } from "./onnx-machine.js";
import { childLoadClient, inProcessLoadClient, type LoadClient, type WindowMark } from "./onnx-load.js";
import { RawSession, rawThroughput } from "./onnx-raw.js";
import { formatReport, summarize, type OnnxBenchReport, type ThroughputRun, type ThroughputScenario } from "./onnx-report.js";
import { startOnnxInferno, type OnnxBenchServer } from "./onnx-server.js";
import { quantile } from "./stats.js";

/** Model ids the server serves: the mobilenet file is also linked under two more ids, each loaded with its own batching. */
const IDS = { mnist: MNIST.name, mobilenet: MOBILENET.name, noBatch: `${MOBILENET.name}-nobatch`, delayed: `${MOBILENET.name}-delay2000` };
const SETTLE_MS = 100;

const busyDelta = (since: number | null): number | null => {
  const now = machineBusyMs();
  return since === null || now === null ? null : now - since;
};

/** Samples of the server's process between the load's window marks: CPU time, main-thread event-loop use, session runs. */
function serverSampler(sessionRuns: () => number) {
  let open: { cpu: NodeJS.CpuUsage; elu: EventLoopUtilization; runs: number; at: number; busy: number | null } | undefined;
  let result: { cpuMs: number; elu: number; runs: number; windowMs: number; busyMs: number | null } | undefined;
  return {
    onMark: (mark: WindowMark) => {
      if (mark === "open") {
        open = { cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), runs: sessionRuns(), at: performance.now(), busy: machineBusyMs() };
      } else if (open) {
        const used = process.cpuUsage(open.cpu);
        result = {
          cpuMs: (used.user + used.system) / 1000,
          elu: performance.eventLoopUtilization(open.elu).utilization,
          runs: sessionRuns() - open.runs,
          windowMs: performance.now() - open.at,
          busyMs: busyDelta(open.busy),
        };
      }
    },
    result: () => {
      if (!result) throw new Error("the load client never closed its window");
      return result;
    },
  };
}

async function infernoRun(server: OnnxBenchServer, client: LoadClient, id: string, req: PreparedRequest, opts: OnnxBenchOptions): Promise<ThroughputRun> {
  const sampler = serverSampler(await server.sessionRunCounter(id));
  const spec = { url: server.url + req.path, body: req.body.toString(), clients: opts.clients, warmupMs: opts.warmupS * 1000, durationMs: opts.durationS * 1000 };
  const load = await client.run(spec, sampler.onMark);
  const srv = sampler.result();
  return {
    perSecond: load.completed / opts.durationS,
    latenciesMs: load.latenciesMs,
    serverCpuPct: (srv.cpuMs / srv.windowMs) * 100,
    clientCpuPct: client.where === "child" ? (load.cpuMs / load.cpuWindowMs) * 100 : null,
    otherCpuPct: srv.busyMs === null ? null : ((srv.busyMs - srv.cpuMs - (client.where === "child" ? load.cpuMs : 0)) / srv.windowMs) * 100,
    serverElu: srv.elu,
    requestsPerRun: srv.runs > 0 ? load.completed / srv.runs : null,
    errors: load.errors,
    firstError: load.firstError,
  };
}

type Planned = Omit<ThroughputScenario, "runs"> & { run: () => Promise<ThroughputRun> };

function plan(opts: OnnxBenchOptions, server: OnnxBenchServer, client: LoadClient, raws: { mnist: RawSession; mobilenet: RawSession }, batching: Record<string, string>): Planned[] {
  const mnistIn = sampleInput(MNIST);
  const mobIn = sampleInput(MOBILENET);
  const mob16 = sampleInput(MOBILENET, 16);
  const req = (model: BenchModel, id: string, form: InputForm, input: Float32Array) => prepareRequest(model, id, input, form);
  const inferno = (name: string, model: BenchModel, id: string, form: InputForm, input: Float32Array): Planned => {
    const r = req(model, id, form, input);
    return { name, side: "inferno", batching: batching[id]!, clients: opts.clients, rows: 1, form, run: () => infernoRun(server, client, id, r, opts) };
  };
  return [
    { name: "mnist-8 raw session.run", side: "raw", batching: "—", clients: 1, rows: 1, form: null, run: () => rawThroughput(raws.mnist, mnistIn, MNIST.dims, opts.warmupS * 1000, opts.durationS * 1000) },
    inferno("mnist-8 Inferno data_b64", MNIST, IDS.mnist, "b64", mnistIn),
    inferno("mnist-8 Inferno nested JSON", MNIST, IDS.mnist, "json", mnistIn),
    { name: "mobilenet raw session.run, batch 1", side: "raw", batching: "—", clients: 1, rows: 1, form: null, run: () => rawThroughput(raws.mobilenet, mobIn, MOBILENET.dims, opts.warmupS * 1000, opts.durationS * 1000) },
    {
      name: "mobilenet raw session.run, batch 16", side: "raw", batching: "—", clients: 1, rows: 16, form: null,
      run: () => rawThroughput(raws.mobilenet, mob16, [16, ...MOBILENET.dims.slice(1)], opts.warmupS * 1000, opts.durationS * 1000),
    },
    inferno("mobilenet Inferno data_b64", MOBILENET, IDS.noBatch, "b64", mobIn),
    inferno("mobilenet Inferno data_b64", MOBILENET, IDS.mobilenet, "b64", mobIn),
    inferno("mobilenet Inferno data_b64", MOBILENET, IDS.delayed, "b64", mobIn),
  ];
}

const describeBatching = (o: Record<string, unknown>, batchable: boolean) =>
  !batchable ? "n/a: fixed batch 1" : o.max_batch_size === 1 ? "off (max_batch_size 1)" : `max ${o.max_batch_size}, delay ${o.max_queue_delay_us} µs`;

async function main(): Promise<void> {
  const parsed = parseOnnxBenchArgs(process.argv.slice(2));
  if (parsed === "help") {
    console.log(onnxUsage);
    return;
  }
  const opts = parsed;
  const files = { mnist: path.join(opts.modelsDir, MNIST.file), mobilenet: path.join(opts.modelsDir, MOBILENET.file) };
  for (const file of Object.values(files)) if (!existsSync(file)) throw new Error(`model not found: ${file} (pass --models DIR)`);
  if (opts.threads > os.availableParallelism()) console.error(`warning: --threads ${opts.threads} is more than the ${os.availableParallelism()} cores`);
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;

  const raws = {
    mnist: await RawSession.open(files.mnist, MNIST.input, MNIST.output, opts.threads),
    mobilenet: await RawSession.open(files.mobilenet, MOBILENET.input, MOBILENET.output, opts.threads),
  };
  let server: OnnxBenchServer | undefined;
  let client: LoadClient | undefined;
  try {
    server = await startOnnxInferno({
      models: { [IDS.mnist]: files.mnist, [IDS.mobilenet]: files.mobilenet, [IDS.noBatch]: files.mobilenet, [IDS.delayed]: files.mobilenet },
      threads: opts.threads,
    });
    const batching: Record<string, string> = {
      [IDS.mnist]: describeBatching(await server.load(IDS.mnist, {}), false),
      [IDS.mobilenet]: describeBatching(await server.load(IDS.mobilenet, {}), true),
      [IDS.noBatch]: describeBatching(await server.load(IDS.noBatch, { max_batch_size: 1 }), true),
      [IDS.delayed]: describeBatching(await server.load(IDS.delayed, { max_batch_size: 16, max_queue_delay_us: 2000 }), true),
    };
    client = opts.client === "child" ? await childLoadClient() : inProcessLoadClient();

    console.error("latency...");
    const lat = [
      { model: MNIST, file: files.mnist, ...(await latency(MNIST, raws.mnist, server, opts.mnistRequests)) },
      { model: MOBILENET, file: files.mobilenet, ...(await latency(MOBILENET, raws.mobilenet, server, opts.mobilenetRequests)) },
    ];

    const planned = plan(opts, server, client, raws, batching);
    const throughput: ThroughputScenario[] = planned.map(({ run: _run, ...meta }) => ({ ...meta, runs: [] }));
    for (let r = 0; r < opts.runs; r++) {
      console.error(`throughput run ${r + 1}/${opts.runs}...`);
      for (const [i, p] of planned.entries()) {
        throughput[i]!.runs.push(await p.run());
        await sleep(SETTLE_MS);
      }
    }

    const breakdowns: Breakdown[] = [];
    if (opts.breakdown) {
      console.error("breakdown...");
      for (const l of lat) {
        const info = (await (await fetch(`${server.url}/models/${l.model.name}`)).json()) as { inputs: TensorSpec[] };
        breakdowns.push(
          await breakdown({
            model: l.model, file: l.file, threads: opts.threads, spec: info.inputs[0]!, serverUrl: server.url, app: server.app,
            requests: l.requests, input: l.input, samples: l.scenario.requests,
          }),
        );
      }
    }

    const report: OnnxBenchReport = {
      facts: {
        cpu: os.cpus()[0]?.model ?? "unknown",
        cores: os.availableParallelism(),
        node: process.version,
        onnxruntimeNode: packageVersion("onnxruntime-node"),
        intraOpThreads: opts.threads,
        interOpThreads: 1,
        models: [MNIST, MOBILENET].map((m) => ({ name: m.name, file: path.join(opts.modelsDir, m.file), bytes: statSync(path.join(opts.modelsDir, m.file)).size })),
        client: client.where,
        loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
      },
      runs: opts.runs,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
      latency: lat.map((l) => l.scenario),
      throughput,
      breakdown: breakdowns,
    };
    console.log(formatReport(report));
    console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (opts.json) {
      // Throughput runs hold thousands of latencies each: the JSON keeps their count and percentiles instead.
      const throughputRuns = report.throughput.map((t) => ({
        ...t,
        runs: t.runs.map(({ latenciesMs, ...run }) => ({
          ...run, requests: latenciesMs.length, p50_ms: quantile(latenciesMs, 0.5), p99_ms: quantile(latenciesMs, 0.99),
        })),
      }));
      await writeFile(opts.json, JSON.stringify({ ...report, throughput: throughputRuns, summary: summarize(report) }, null, 2) + "\n");
      console.log(`wrote ${opts.json}`);
    }
  } finally {
    await client?.close();
    await server?.close();
    await raws.mnist.release();
    await raws.mobilenet.release();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
