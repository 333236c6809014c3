import { fixed, int, other, table } from "./onnx-report.js";
import { median, quantile } from "./stats.js";
import { SIDE_LABELS, type TensorSideName } from "./tensor-wire.js";
import { goal, grpcStreamGoals, ipcStreamGoals, streamLines, streamSummary, verdict } from "./transport-stream-report.js";
import type { LatencyResult, ThroughputResult, ThroughputSide } from "./transport-tensors.js";
import type { StreamScenario } from "./transport-streams.js";

export interface TransportFacts {
  cpu: string;
  cores: number;
  node: string;
  onnxruntimeNode: string;
  grpcJs: string;
  nodeLlamaCpp: string;
  /** onnxruntime intra-op and llama.cpp threads, every side. */
  threads: number;
  /** llama.cpp threads (absent in reports written before it was separate: then `threads`). */
  llamaThreads?: number;
  clients: number;
  grpcChannels: number;
  /** Only raw and the IPC sides ran (--only ipc). */
  ipcOnly: boolean;
  loadAverage: { start: number; end: number };
  quick: boolean;
}

export interface TransportReport {
  facts: TransportFacts;
  runs: number;
  durationS: number;
  warmupS: number;
  streamRuns: number;
  latency: LatencyResult | undefined;
  throughput: ThroughputResult[];
  streams: StreamScenario[];
}

const sideName = (s: Pick<ThroughputSide, "side" | "rows">) => (s.side === "raw" && s.rows > 1 ? `raw session.run, batch ${s.rows}` : SIDE_LABELS[s.side]);

function throughputSummary(t: ThroughputResult) {
  const sides = t.sides.map((s) => {
    const rates = s.runs.map((r) => r.perSecond);
    const all = s.runs.flatMap((r) => r.latenciesMs);
    const med = (xs: Array<number | null>) => (xs.every((x) => x !== null) ? median(xs as number[]) : null);
    return {
      side: s.side, label: sideName(s), rows: s.rows,
      per_second: median(rates), per_second_min: Math.min(...rates), per_second_max: Math.max(...rates), images_per_second: median(rates) * s.rows,
      p50_ms: quantile(all, 0.5), p99_ms: quantile(all, 0.99),
      requests_per_run: med(s.runs.map((r) => r.requestsPerRun)),
      server_cpu_pct: median(s.runs.map((r) => r.serverCpuPct)),
      client_cpu_pct: med(s.runs.map((r) => r.clientCpuPct)),
      server_elu: med(s.runs.map((r) => r.serverElu)),
      other_cpu_pct: med(s.runs.map((r) => r.otherCpuPct)),
      errors: s.runs.reduce((n, r) => n + r.errors, 0),
      first_error: s.runs.find((r) => r.firstError)?.firstError,
    };
  });
  const images = (side: TensorSideName) => sides.find((s) => s.side === side)?.images_per_second ?? Number.NaN;
  // The raw ceiling is the better of raw's loops (batch 1, or the batcher's batch size), in images/s.
  const rawBest = Math.max(...sides.filter((s) => s.side === "raw").map((s) => s.images_per_second));
  const vsRaw = Object.fromEntries(sides.filter((s) => s.side !== "raw").map((s) => [s.side, s.images_per_second / rawBest]));
  return {
    model: t.model, clients: t.clients, batching: t.batching, sides, raw_best_images_per_second: rawBest, vs_raw: vsRaw,
    grpc_vs_rest_binary: images("grpc") / images("kserve-binary"), ipc_vs_rest_binary: images("ipc") / images("kserve-binary"), ipc_vs_grpc: images("ipc") / images("grpc"),
    max_abs_diff_vs_raw: t.maxAbsDiff,
  };
}

/** The bare server each side's transport is measured against. */
const FLOOR_OF: Partial<Record<TensorSideName, TensorSideName>> = {
  grpc: "grpc-floor", grpcio: "grpcio-floor", "kserve-binary": "http-floor", "kserve-json": "http-floor", octet: "http-floor", ipc: "ipc-floor", "ipc-raw": "ipc-raw-floor",
};

function latencySummary(l: LatencyResult) {
  const sides = l.sides.map((s) => ({
    side: s.side, label: SIDE_LABELS[s.side], p50_ms: median(s.p50Ms), p99_ms: median(s.p99Ms), b2b_p50_ms: median(s.b2bP50Ms), b2b_p99_ms: median(s.b2bP99Ms),
  }));
  const floor = (side: TensorSideName) => sides.find((s) => s.side === FLOOR_OF[side]);
  const raw = sides.find((s) => s.side === "raw")!;
  return {
    model: l.model, requests: l.requests, rounds: l.rounds, other_cpu_pct: l.otherCpuPct, max_abs_diff_vs_raw: l.maxAbsDiff,
    sides: sides.map((s) => ({
      ...s, overhead_p50_ms: s.p50_ms - raw.p50_ms, overhead_p99_ms: s.p99_ms - raw.p99_ms, b2b_overhead_p50_ms: s.b2b_p50_ms - raw.b2b_p50_ms,
      // What is left of the overhead once the bare transport's own round trip is taken out: Inferno's share.
      own_p50_ms: floor(s.side) ? s.p50_ms - raw.p50_ms - floor(s.side)!.p50_ms : null,
      b2b_own_p50_ms: floor(s.side) ? s.b2b_p50_ms - raw.b2b_p50_ms - floor(s.side)!.b2b_p50_ms : null,
    })),
  };
}

/** Medians, ratios and goals, computed the same way for the table and the JSON. */
export function summarize(report: TransportReport) {
  const latency = report.latency && latencySummary(report.latency);
  const throughput = report.throughput.map(throughputSummary);
  const mnist = throughput.find((t) => t.model.startsWith("mnist"));
  const mobilenet = throughput.find((t) => t.model.startsWith("mobilenet"));
  const lat = (side: TensorSideName) => latency?.sides.find((s) => s.side === side);
  const grpcLatency = lat("grpc");
  const grpcioLatency = lat("grpcio");
  const ipcLatency = lat("ipc");
  return {
    latency,
    throughput,
    streams: report.streams.map(streamSummary),
    goals: {
      mnist_grpc_overhead_p50_ms: grpcLatency && goal(grpcLatency.overhead_p50_ms, 0.3, true),
      mnist_grpc_floor_p50_ms: lat("grpc-floor")?.p50_ms,
      mnist_grpc_own_p50_ms: grpcLatency?.own_p50_ms ?? undefined,
      mnist_grpcio_overhead_p50_ms: grpcioLatency && goal(grpcioLatency.overhead_p50_ms, 0.3, true),
      mnist_grpcio_floor_p50_ms: lat("grpcio-floor")?.p50_ms,
      mnist_grpcio_own_p50_ms: grpcioLatency?.own_p50_ms ?? undefined,
      mnist_grpc_vs_rest_binary: mnist?.grpc_vs_rest_binary,
      mnist_grpcio_vs_rest_binary: mnist ? mnist.vs_raw.grpcio! / mnist.vs_raw["kserve-binary"]! : undefined,
      mnist_grpcio_floor_vs_raw: mnist?.vs_raw["grpcio-floor"],
      mnist_grpc_vs_raw: mnist?.vs_raw.grpc,
      mobilenet_grpc_vs_raw: mobilenet?.vs_raw.grpc !== undefined ? goal(mobilenet.vs_raw.grpc, 0.8, false) : undefined,
      mobilenet_grpcio_vs_raw: mobilenet?.vs_raw.grpcio !== undefined ? goal(mobilenet.vs_raw.grpcio, 0.8, false) : undefined,
      mobilenet_rest_binary_vs_raw: mobilenet?.vs_raw["kserve-binary"] !== undefined ? goal(mobilenet.vs_raw["kserve-binary"], 0.8, false) : undefined,
      mnist_ipc_overhead_p50_ms: ipcLatency && goal(ipcLatency.overhead_p50_ms, 0.05, true),
      mnist_ipc_raw_frames_overhead_p50_ms: lat("ipc-raw")?.overhead_p50_ms,
      mnist_ipc_floor_p50_ms: lat("ipc-floor")?.p50_ms,
      mnist_ipc_raw_floor_p50_ms: lat("ipc-raw-floor")?.p50_ms,
      mnist_ipc_own_p50_ms: ipcLatency?.own_p50_ms ?? undefined,
      mnist_ipc_b2b_overhead_p50_ms: ipcLatency && goal(ipcLatency.b2b_overhead_p50_ms, 0.05, true),
      mnist_ipc_raw_frames_b2b_overhead_p50_ms: lat("ipc-raw")?.b2b_overhead_p50_ms,
      mnist_ipc_floor_b2b_p50_ms: lat("ipc-floor")?.b2b_p50_ms,
      mnist_ipc_raw_floor_b2b_p50_ms: lat("ipc-raw-floor")?.b2b_p50_ms,
      mnist_ipc_own_b2b_p50_ms: ipcLatency?.b2b_own_p50_ms ?? undefined,
      mnist_ipc_vs_raw: mnist?.vs_raw.ipc,
      mnist_ipc_connections_vs_raw: mnist?.vs_raw["ipc-conns"],
      mnist_ipc_raw_frames_vs_raw: mnist?.vs_raw["ipc-raw"],
    },
  };
}

const ratio = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "—" : `${fixed(n, 2)}×`);
const ms = (n: number | undefined) => `${fixed(n ?? null, 3)} ms`;
const diffs = (d: Partial<Record<TensorSideName, number>>) => Object.entries(d).map(([k, v]) => `${k} ${v}`).join(", ");

export function formatReport(report: TransportReport): string {
  const f = report.facts;
  const s = summarize(report);
  const out: string[] = [
    `cpu: ${f.cpu}, ${f.cores} cores; node ${f.node}; onnxruntime-node ${f.onnxruntimeNode} (CPU EP); @grpc/grpc-js ${f.grpcJs}; node-llama-cpp ${f.nodeLlamaCpp}`,
    `threads: onnxruntime intra-op ${f.threads}, llama.cpp ${f.llamaThreads ?? f.threads}, every side; ${f.clients} concurrent clients; gRPC: ${f.grpcChannels} channel${f.grpcChannels === 1 ? "" : "s"} for them all` +
      (f.quick ? "; QUICK run: noisy smoke figures" : ""),
    `load average (1 min): ${fixed(f.loadAverage.start, 2)} at start, ${fixed(f.loadAverage.end, 2)} at end` +
      (Math.max(f.loadAverage.start, f.loadAverage.end) > 0.5 * f.cores ? " (busy machine: expect noise)" : ""),
  ];
  if (s.latency) {
    const l = s.latency;
    out.push(
      "",
      `${l.model}: latency at 1 client, ${l.requests} sequential requests per side and round, median of ${l.rounds} round${l.rounds === 1 ? "" : "s"}; ` +
        `other processes used ${other(l.other_cpu_pct)} CPU meanwhile. In turn: the sides take turns request by request (each request finds its`,
      "server idle since its last one); back to back: one side's requests one after another (server and client awake).",
      table(
        ["side", "in turn: p50 ms", "p99 ms", "p50 − raw", "p99 − raw", "p50 − raw − floor", "back to back: p50 ms", "p99 ms", "p50 − raw", "p50 − raw − floor"],
        l.sides.map((x) => {
          const vsRaw = x.side !== "raw" && !x.side.endsWith("floor");
          const ifVsRaw = (n: number) => (vsRaw ? fixed(n, 3) : "—");
          return [
            x.label, fixed(x.p50_ms, 3), fixed(x.p99_ms, 3), ifVsRaw(x.overhead_p50_ms), ifVsRaw(x.overhead_p99_ms), fixed(x.own_p50_ms, 3),
            fixed(x.b2b_p50_ms, 3), fixed(x.b2b_p99_ms, 3), ifVsRaw(x.b2b_overhead_p50_ms), fixed(x.b2b_own_p50_ms, 3),
          ];
        }),
      ),
      `outputs vs raw on the same input, max |diff|: ${diffs(l.max_abs_diff_vs_raw)}`,
    );
  }
  for (const t of s.throughput) {
    out.push(
      "",
      `${t.model}: throughput at ${t.clients} clients (raw: one back-to-back loop), median of ${report.runs} window${report.runs === 1 ? "" : "s"} of ${report.durationS} s ` +
        `after ${report.warmupS} s of load; batching ${t.batching}`,
      table(
        ["side", "req/s (min–max)", "images/s", "×raw best", "p50 ms", "p99 ms", "req/run", "server CPU", "client CPU", "server ELU", "other CPU"],
        t.sides.map((x) => [
          x.label, `${int(x.per_second)} (${int(x.per_second_min)}–${int(x.per_second_max)})`, int(x.images_per_second),
          x.side === "raw" ? "—" : ratio(t.vs_raw[x.side]), fixed(x.p50_ms, 2), fixed(x.p99_ms, 2), fixed(x.requests_per_run, 2),
          `${fixed(x.server_cpu_pct)}%`, x.client_cpu_pct === null ? "—" : `${fixed(x.client_cpu_pct)}%`, fixed(x.server_elu, 2), other(x.other_cpu_pct),
        ]),
      ),
      `gRPC / REST binary: ${ratio(t.grpc_vs_rest_binary)}; IPC / REST binary: ${ratio(t.ipc_vs_rest_binary)}; IPC / gRPC: ${ratio(t.ipc_vs_grpc)}; ` +
        `outputs vs raw, max |diff|: ${diffs(t.max_abs_diff_vs_raw)}`,
      ...t.sides.filter((x) => x.errors > 0).map((x) => `errors: ${x.label}: ${x.errors} (first: ${x.first_error})`),
    );
  }
  out.push(...streamLines(s.streams, report.streamRuns));
  const g = s.goals;
  out.push(
    "",
    "goals (issue #16, IPC):",
    `  mnist-8 IPC overhead over raw at 1 client, p50, shipped client, in turn: ${verdict(g.mnist_ipc_overhead_p50_ms, (n) => `${fixed(n, 3)} ms`)}; ` +
      `raw-frame client ${ms(g.mnist_ipc_raw_frames_overhead_p50_ms)}`,
    `    a bare Unix-socket round trip: ${ms(g.mnist_ipc_floor_p50_ms)} (shipped client), ${ms(g.mnist_ipc_raw_floor_p50_ms)} (raw frames); Inferno's own ${ms(g.mnist_ipc_own_p50_ms)}`,
    `  the same back to back: ${verdict(g.mnist_ipc_b2b_overhead_p50_ms, (n) => `${fixed(n, 3)} ms`)}; raw-frame client ${ms(g.mnist_ipc_raw_frames_b2b_overhead_p50_ms)}`,
    `    a bare Unix-socket round trip: ${ms(g.mnist_ipc_floor_b2b_p50_ms)} (shipped client), ${ms(g.mnist_ipc_raw_floor_b2b_p50_ms)} (raw frames); Inferno's own ${ms(g.mnist_ipc_own_b2b_p50_ms)}`,
    `  mnist-8 at ${f.clients} clients over raw: IPC 1 connection ${ratio(g.mnist_ipc_vs_raw)}, ${f.clients} connections ${ratio(g.mnist_ipc_connections_vs_raw)}, ` +
      `raw frames ${ratio(g.mnist_ipc_raw_frames_vs_raw)}`,
    ...ipcStreamGoals(s.streams),
  );
  if (!f.ipcOnly) {
    out.push(
      "goals (issue #15, gRPC):",
      `  mnist-8 gRPC overhead over raw at 1 client, p50: ${verdict(g.mnist_grpc_overhead_p50_ms, (n) => `${fixed(n, 3)} ms`)}; ` +
        `of which a bare grpc-js round trip ${ms(g.mnist_grpc_floor_p50_ms)}, Inferno's own ${ms(g.mnist_grpc_own_p50_ms)}`,
      `  the same from a grpcio client: ${verdict(g.mnist_grpcio_overhead_p50_ms, (n) => `${fixed(n, 3)} ms`)}; ` +
        `of which a bare grpc-js round trip ${ms(g.mnist_grpcio_floor_p50_ms)}, Inferno's own ${ms(g.mnist_grpcio_own_p50_ms)}`,
      `  mnist-8 at ${f.clients} clients: gRPC / REST binary ${ratio(g.mnist_grpc_vs_rest_binary)} (grpcio client ${ratio(g.mnist_grpcio_vs_rest_binary)}), ` +
        `gRPC / raw ${ratio(g.mnist_grpc_vs_raw)}; the bare grpc-js server from grpcio ${ratio(g.mnist_grpcio_floor_vs_raw)} raw`,
      `  mobilenet at ${f.clients} clients, images/s over raw's best loop: gRPC ${verdict(g.mobilenet_grpc_vs_raw, (n) => `${fixed(n, 2)}×`)} ` +
        `(grpcio client ${verdict(g.mobilenet_grpcio_vs_raw, (n) => `${fixed(n, 2)}×`)}), REST binary ${verdict(g.mobilenet_rest_binary_vs_raw, (n) => `${fixed(n, 2)}×`)}`,
      ...grpcStreamGoals(s.streams),
    );
  }
  out.push(
    "",
    "raw = onnxruntime-node in the bench's process, Inferno's session options; the server is a real Inferno in a child process.",
    "Clients run in the bench's process: node:http keep-alive agents (one connection per client), grpc-js (one channel for all), the shipped",
    "IPC client (src/client: one connection for all, or one each) and a raw-frame IPC client (one connection); the grpcio sides run in a",
    "Python process of their own (bench/grpcio_client.py, one channel, its own clock; client CPU is that process's); the sides never run at once.",
    "CPU % = process CPU time over the window / window (100% = one core); server CPU includes its onnxruntime worker threads; client CPU is",
    "the bench process's; other CPU is the rest of the machine (well above 0: a busy machine, noisy figures). ELU = the server's main-thread",
    "event-loop utilization. req/run = requests per session.run (the dynamic batcher merges same-shaped requests).",
  );
  return out.join("\n");
}
