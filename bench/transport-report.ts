import { fixed, int, other, table } from "./onnx-report.js";
import { median, quantile } from "./stats.js";
import { SIDE_LABELS, type TensorSideName } from "./tensor-wire.js";
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
  clients: number;
  grpcChannels: number;
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

/** What a report line promises, and whether the run kept it. */
const goal = (value: number, target: number, atMost: boolean) => ({ value, target, met: atMost ? value <= target : value >= target });

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
  return { model: t.model, clients: t.clients, batching: t.batching, sides, raw_best_images_per_second: rawBest, vs_raw: vsRaw, grpc_vs_rest_binary: images("grpc") / images("kserve-binary"), max_abs_diff_vs_raw: t.maxAbsDiff };
}

/** The bare server each side's transport is measured against. */
const FLOOR_OF: Partial<Record<TensorSideName, TensorSideName>> = { grpc: "grpc-floor", "kserve-binary": "http-floor", "kserve-json": "http-floor", octet: "http-floor" };

function latencySummary(l: LatencyResult) {
  const sides = l.sides.map((s) => ({ side: s.side, label: SIDE_LABELS[s.side], p50_ms: median(s.p50Ms), p99_ms: median(s.p99Ms) }));
  const p50 = (side: TensorSideName | undefined) => sides.find((s) => s.side === side)?.p50_ms ?? Number.NaN;
  const raw = sides.find((s) => s.side === "raw")!;
  return {
    model: l.model, requests: l.requests, rounds: l.rounds, other_cpu_pct: l.otherCpuPct, max_abs_diff_vs_raw: l.maxAbsDiff,
    sides: sides.map((s) => ({
      ...s, overhead_p50_ms: s.p50_ms - raw.p50_ms, overhead_p99_ms: s.p99_ms - raw.p99_ms,
      // What is left of the overhead once the bare transport's own round trip is taken out: Inferno's share.
      own_p50_ms: FLOOR_OF[s.side] ? s.p50_ms - raw.p50_ms - p50(FLOOR_OF[s.side]) : null,
    })),
  };
}

function streamSummary(s: StreamScenario) {
  const side = (k: "sse" | "grpc") => ({
    tok_s: median(s.sides[k].rates), tok_s_min: Math.min(...s.sides[k].rates), tok_s_max: Math.max(...s.sides[k].rates),
    server_cpu_us_per_token: median(s.sides[k].serverCpuUsPerToken), client_cpu_us_per_token: median(s.sides[k].clientCpuUsPerToken),
  });
  const sse = side("sse");
  const grpc = side("grpc");
  return {
    model: s.model, streams: s.streams, parallel: s.parallel, max_tokens: s.maxTokens, measures: s.measures, sse, grpc,
    grpc_vs_sse: goal(grpc.tok_s / sse.tok_s, 0.98, false),
    // Round i of each side ran back to back, so their ratio shares most of the machine's other noise.
    grpc_vs_sse_paired: median(s.sides.grpc.rates.map((r, i) => r / s.sides.sse.rates[i]!)),
    warnings: s.warnings,
  };
}

/** Medians, ratios and goals, computed the same way for the table and the JSON. */
export function summarize(report: TransportReport) {
  const latency = report.latency && latencySummary(report.latency);
  const throughput = report.throughput.map(throughputSummary);
  const mnist = throughput.find((t) => t.model.startsWith("mnist"));
  const mobilenet = throughput.find((t) => t.model.startsWith("mobilenet"));
  const grpcLatency = latency?.sides.find((s) => s.side === "grpc");
  const grpcFloor = latency?.sides.find((s) => s.side === "grpc-floor");
  return {
    latency,
    throughput,
    streams: report.streams.map(streamSummary),
    goals: {
      mnist_grpc_overhead_p50_ms: grpcLatency && goal(grpcLatency.overhead_p50_ms, 0.3, true),
      mnist_grpc_floor_p50_ms: grpcFloor?.p50_ms,
      mnist_grpc_own_p50_ms: grpcLatency?.own_p50_ms ?? undefined,
      mnist_grpc_vs_rest_binary: mnist?.grpc_vs_rest_binary,
      mnist_grpc_vs_raw: mnist?.vs_raw.grpc,
      mobilenet_grpc_vs_raw: mobilenet?.vs_raw.grpc !== undefined ? goal(mobilenet.vs_raw.grpc, 0.8, false) : undefined,
      mobilenet_rest_binary_vs_raw: mobilenet?.vs_raw["kserve-binary"] !== undefined ? goal(mobilenet.vs_raw["kserve-binary"], 0.8, false) : undefined,
    },
  };
}

const ratio = (n: number | undefined) => (n === undefined ? "—" : `${fixed(n, 2)}×`);
const verdict = (g: { value: number; target: number; met: boolean } | undefined, show: (n: number) => string) =>
  g === undefined ? "not run" : `${show(g.value)} (${g.met ? "meets" : "misses"} the goal of ${show(g.target)})`;
const diffs = (d: Partial<Record<TensorSideName, number>>) => Object.entries(d).map(([k, v]) => `${k} ${v}`).join(", ");

export function formatReport(report: TransportReport): string {
  const f = report.facts;
  const s = summarize(report);
  const out: string[] = [
    `cpu: ${f.cpu}, ${f.cores} cores; node ${f.node}; onnxruntime-node ${f.onnxruntimeNode} (CPU EP); @grpc/grpc-js ${f.grpcJs}; node-llama-cpp ${f.nodeLlamaCpp}`,
    `threads ${f.threads} (onnxruntime intra-op, llama.cpp), every side; ${f.clients} concurrent clients; gRPC: ${f.grpcChannels} channel${f.grpcChannels === 1 ? "" : "s"} for them all` +
      (f.quick ? "; QUICK run: noisy smoke figures" : ""),
    `load average (1 min): ${fixed(f.loadAverage.start, 2)} at start, ${fixed(f.loadAverage.end, 2)} at end` +
      (Math.max(f.loadAverage.start, f.loadAverage.end) > 0.5 * f.cores ? " (busy machine: expect noise)" : ""),
  ];
  if (s.latency) {
    const l = s.latency;
    out.push(
      "",
      `${l.model}: latency at 1 client, ${l.requests} sequential requests per side and round, sides in turn, median of ${l.rounds} round${l.rounds === 1 ? "" : "s"}; ` +
        `other processes used ${other(l.other_cpu_pct)} CPU meanwhile`,
      table(
        ["side", "p50 ms", "p99 ms", "p50 − raw ms", "p99 − raw ms", "p50 − raw − floor ms"],
        l.sides.map((x) => {
          const vsRaw = x.side !== "raw" && !x.side.endsWith("floor");
          return [x.label, fixed(x.p50_ms, 3), fixed(x.p99_ms, 3), vsRaw ? fixed(x.overhead_p50_ms, 3) : "—", vsRaw ? fixed(x.overhead_p99_ms, 3) : "—", fixed(x.own_p50_ms, 3)];
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
      `gRPC / REST binary: ${ratio(t.grpc_vs_rest_binary)}; outputs vs raw, max |diff|: ${diffs(t.max_abs_diff_vs_raw)}`,
      ...t.sides.filter((x) => x.errors > 0).map((x) => `errors: ${x.label}: ${x.errors} (first: ${x.first_error})`),
    );
  }
  if (s.streams.length > 0) {
    out.push(
      "",
      `token streams: greedy, ignore_eos, median of ${report.streamRuns} rounds per scenario, sides in turn; one server per scenario with parallel = streams`,
      table(
        ["model", "streams", "SSE tok/s (min–max)", "gRPC tok/s (min–max)", "gRPC/SSE", "paired", "server CPU µs/tok SSE / gRPC", "client CPU µs/tok SSE / gRPC"],
        s.streams.map((x) => [
          x.model, String(x.streams), `${fixed(x.sse.tok_s)} (${fixed(x.sse.tok_s_min)}–${fixed(x.sse.tok_s_max)})`,
          `${fixed(x.grpc.tok_s)} (${fixed(x.grpc.tok_s_min)}–${fixed(x.grpc.tok_s_max)})`, ratio(x.grpc_vs_sse.value), ratio(x.grpc_vs_sse_paired),
          `${fixed(x.sse.server_cpu_us_per_token)} / ${fixed(x.grpc.server_cpu_us_per_token)}`, `${fixed(x.sse.client_cpu_us_per_token)} / ${fixed(x.grpc.client_cpu_us_per_token)}`,
        ]),
      ),
      ...s.streams.flatMap((x) => x.warnings.slice(0, 3).map((w) => `warning: ${x.model}, ${x.streams} streams: ${w}`)),
    );
  }
  const g = s.goals;
  out.push(
    "",
    "goals (issue #15):",
    `  mnist-8 gRPC overhead over raw at 1 client, p50: ${verdict(g.mnist_grpc_overhead_p50_ms, (n) => `${fixed(n, 3)} ms`)}; ` +
      `of which a bare grpc-js round trip ${fixed(g.mnist_grpc_floor_p50_ms ?? null, 3)} ms, Inferno's own ${fixed(g.mnist_grpc_own_p50_ms ?? null, 3)} ms`,
    `  mnist-8 at ${f.clients} clients: gRPC / REST binary ${ratio(g.mnist_grpc_vs_rest_binary)}, gRPC / raw ${ratio(g.mnist_grpc_vs_raw)}`,
    `  mobilenet at ${f.clients} clients, images/s over raw's best loop: gRPC ${verdict(g.mobilenet_grpc_vs_raw, (n) => `${fixed(n, 2)}×`)}, ` +
      `REST binary ${verdict(g.mobilenet_rest_binary_vs_raw, (n) => `${fixed(n, 2)}×`)}`,
    ...s.streams.map((x) => `  ${x.model}, ${x.streams} stream${x.streams === 1 ? "" : "s"}: gRPC / SSE ${verdict(x.grpc_vs_sse, (n) => `${fixed(n, 3)}×`)}`),
    "",
    "raw = onnxruntime-node in the bench's process, Inferno's session options; the server is a real Inferno in a child process.",
    "Clients run in the bench's process: node:http keep-alive agents (one connection per client) and grpc-js; the sides never run at once.",
    "CPU % = process CPU time over the window / window (100% = one core); server CPU includes its onnxruntime worker threads; client CPU is",
    "the bench process's; other CPU is the rest of the machine (well above 0: a busy machine, noisy figures). ELU = the server's main-thread",
    "event-loop utilization. req/run = requests per session.run (the dynamic batcher merges same-shaped requests).",
  );
  return out.join("\n");
}
