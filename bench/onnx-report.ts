import type { Breakdown } from "./onnx-breakdown.js";
import { FORM_LABELS, type InputForm } from "./onnx-inputs.js";
import { median, quantile } from "./stats.js";

export interface OnnxFacts {
  cpu: string;
  cores: number;
  node: string;
  onnxruntimeNode: string;
  intraOpThreads: number;
  interOpThreads: number;
  models: Array<{ name: string; file: string; bytes: number }>;
  /** Where the throughput load generator ran. */
  client: "child" | "inprocess";
  loadAverage: { start: number; end: number };
}

/** A latency side: raw session.run, an Inferno input form sent with fetch, or data_b64 sent with node:http. */
export type Side = "raw" | InputForm | "b64-node-http";

export interface LatencySide {
  side: Side;
  requestBytes: number | null;
  responseBytes: number | null;
  samplesMs: number[];
}

export interface LatencyScenario {
  model: string;
  requests: number;
  sides: LatencySide[];
  /** Largest |Inferno output − raw output| per form on the same input: 0 means the same numbers came back. */
  maxAbsDiff: Partial<Record<InputForm, number>>;
  /** CPU that other processes on the machine used while this scenario ran, % of one core (null off Linux). */
  otherCpuPct: number | null;
}

export interface ThroughputRun {
  /** Completed requests (Inferno) or session runs (raw) per second of the window. */
  perSecond: number;
  latenciesMs: number[];
  /** CPU time of the server's process over the window, as % of one core (raw: the bench process). */
  serverCpuPct: number;
  clientCpuPct: number | null;
  /** CPU that other processes on the machine used over the window, % of one core (null off Linux). */
  otherCpuPct: number | null;
  /** Event-loop utilization of the server's main thread over the window (Inferno only). */
  serverElu: number | null;
  /** Requests per session run (Inferno): how many requests the dynamic batcher merged on average. */
  requestsPerRun: number | null;
  errors: number;
  firstError: string | undefined;
}

export interface ThroughputScenario {
  name: string;
  side: "raw" | "inferno";
  batching: string;
  /** Concurrent clients (raw: 1, a back-to-back loop on one session). */
  clients: number;
  /** Images per request (Inferno) or per session run (raw). */
  rows: number;
  form: InputForm | null;
  runs: ThroughputRun[];
}

export interface OnnxBenchReport {
  facts: OnnxFacts;
  runs: number;
  durationS: number;
  warmupS: number;
  latency: LatencyScenario[];
  throughput: ThroughputScenario[];
  breakdown: Breakdown[];
}

const us = (ms: number) => ms * 1000;
const sideLabel = (s: Side) =>
  s === "raw" ? "raw session.run (bench main thread)" : s === "b64-node-http" ? `${FORM_LABELS.b64} (node:http, not fetch)` : FORM_LABELS[s];

/** Percentiles and ratios, computed the same way for the table and the JSON. */
export function summarize(report: OnnxBenchReport) {
  return {
    latency: report.latency.map((l) => {
      const raw = l.sides.find((s) => s.side === "raw")!;
      const rawP50 = us(quantile(raw.samplesMs, 0.5));
      const rawP99 = us(quantile(raw.samplesMs, 0.99));
      return {
        model: l.model,
        requests: l.requests,
        sides: l.sides.map((s) => {
          const p50 = us(quantile(s.samplesMs, 0.5));
          const p99 = us(quantile(s.samplesMs, 0.99));
          return {
            side: s.side, request_bytes: s.requestBytes, response_bytes: s.responseBytes,
            p50_us: p50, p99_us: p99, overhead_p50_us: p50 - rawP50, overhead_p99_us: p99 - rawP99, ratio_p50: p50 / rawP50,
          };
        }),
        max_abs_diff_vs_raw: l.maxAbsDiff,
        other_cpu_pct: l.otherCpuPct,
      };
    }),
    throughput: report.throughput.map((t) => {
      const all = t.runs.flatMap((r) => r.latenciesMs);
      const rates = t.runs.map((r) => r.perSecond);
      const med = (xs: Array<number | null>) => (xs.every((x) => x !== null) ? median(xs as number[]) : null);
      return {
        name: t.name, side: t.side, batching: t.batching, clients: t.clients, rows: t.rows, form: t.form,
        per_second: median(rates), per_second_min: Math.min(...rates), per_second_max: Math.max(...rates),
        images_per_second: median(rates) * t.rows,
        p50_ms: quantile(all, 0.5), p99_ms: quantile(all, 0.99),
        requests_per_run: med(t.runs.map((r) => r.requestsPerRun)),
        server_cpu_pct: median(t.runs.map((r) => r.serverCpuPct)),
        client_cpu_pct: med(t.runs.map((r) => r.clientCpuPct)),
        other_cpu_pct: med(t.runs.map((r) => r.otherCpuPct)),
        server_elu: med(t.runs.map((r) => r.serverElu)),
        errors: t.runs.reduce((n, r) => n + r.errors, 0),
        first_error: t.runs.find((r) => r.firstError)?.firstError,
      };
    }),
  };
}

/** Other processes' CPU: /proc/stat counts in 10 ms ticks, so an idle machine can come out a little below 0. */
export const other = (n: number | null) => (n === null ? "—" : `${fixed(Math.max(0, n))}%`);
export const fixed = (n: number | null, digits = 0) => (n !== null && Number.isFinite(n) ? n.toFixed(digits) : "—");
export const int = (n: number | null) => (n !== null && Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function breakdownTable(b: Breakdown, measured: Map<Side, number>): string {
  const cols = b.stages.map((s) => s.form);
  const stage = (i: number) => b.stages[i]!;
  const row = (label: string, f: (i: number) => number | null) => [label, ...cols.map((_, i) => fixed(f(i)))];
  const inProcess = (i: number) => stage(i).jsonParseUs + stage(i).decodeUs + b.workerHopUs + stage(i).encodeUs;
  const sum = (i: number) => stage(i).httpFloorUs + inProcess(i);
  const own = (i: number) => stage(i).infernoInjectUs - b.workerRunUs - stage(i).floorInjectUs;
  return table(
    [`${b.model}: median µs per stage, each timed alone (${b.samples} samples)`, ...cols],
    [
      row("1 fetch + HTTP round trip of the same bytes (bare Fastify, body unparsed)", (i) => stage(i).httpFloorUs),
      row("  (1 with node:http instead of fetch)", (i) => stage(i).httpFloorNodeUs),
      row("2 Fastify JSON body parse", (i) => stage(i).jsonParseUs),
      row("3 Inferno body schema + tensor decode/validation", (i) => stage(i).decodeUs),
      row("4 worker hop (SessionClient.run − session.run inside the worker)", () => b.workerHopUs),
      row("5 output encode + JSON.stringify", (i) => stage(i).encodeUs),
      row("sum of 1–5", sum),
      row("measured overhead (Inferno p50 − raw p50, latency table)", (i) => measured.get(cols[i]!) ?? null),
      row("not accounted for by 1–5", (i) => (measured.get(cols[i]!) ?? Number.NaN) - sum(i)),
      row("cross-check, no socket: Inferno via app.inject − worker session.run", (i) => stage(i).infernoInjectUs - b.workerRunUs),
      row("cross-check, no socket: bare route via app.inject", (i) => stage(i).floorInjectUs),
      row("Inferno's in-process handling (difference of the two) vs 2–5", own),
      row("2–5", inProcess),
    ],
  );
}

export function formatReport(report: OnnxBenchReport): string {
  const f = report.facts;
  const s = summarize(report);
  const out: string[] = [
    `cpu: ${f.cpu}, ${f.cores} cores; node ${f.node}; onnxruntime-node ${f.onnxruntimeNode} (CPU EP); ` +
      `intra-op threads ${f.intraOpThreads}, inter-op ${f.interOpThreads}, graph optimization all (raw and Inferno alike)`,
    ...f.models.map((m) => `model ${m.name}: ${m.file} (${m.bytes.toLocaleString("en-US")} bytes)`),
    `load average (1 min): ${fixed(f.loadAverage.start, 2)} at start, ${fixed(f.loadAverage.end, 2)} at end` +
      (Math.max(f.loadAverage.start, f.loadAverage.end) > 0.5 * f.cores ? " (busy machine: expect noise)" : ""),
  ];
  for (const l of s.latency) {
    out.push(
      "",
      `${l.model}: latency, ${l.requests} sequential requests per side (one client, keep-alive, sides interleaved); ` +
        `other processes used ${other(l.other_cpu_pct)} CPU meanwhile`,
      table(
        ["side", "req bytes", "resp bytes", "p50 µs", "p99 µs", "overhead p50 µs", "overhead p99 µs", "p50 ×raw"],
        l.sides.map((x) => [
          sideLabel(x.side), int(x.request_bytes), int(x.response_bytes), int(x.p50_us), int(x.p99_us),
          x.side === "raw" ? "—" : int(x.overhead_p50_us), x.side === "raw" ? "—" : int(x.overhead_p99_us), `${fixed(x.ratio_p50, 2)}×`,
        ]),
      ),
      `outputs vs raw on the same input, max |diff|: ${Object.entries(l.max_abs_diff_vs_raw).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    );
  }
  out.push(
    "",
    `throughput: median of ${report.runs} runs of ${report.durationS} s (after ${report.warmupS} s of load each); ` +
      `latency percentiles over all runs; load generator: ${f.client === "child" ? "a forked child process" : "the server's own process"}`,
    table(
      ["scenario", "batching", "clients", "req/s (min–max)", "images/s", "p50 ms", "p99 ms", "req/run", "server CPU", "client CPU", "server ELU", "other CPU"],
      s.throughput.map((t) => [
        t.name, t.batching, t.side === "raw" ? "loop" : String(t.clients),
        `${int(t.per_second)} (${int(t.per_second_min)}–${int(t.per_second_max)})`, int(t.images_per_second),
        fixed(t.p50_ms, 2), fixed(t.p99_ms, 2), fixed(t.requests_per_run, 2),
        `${fixed(t.server_cpu_pct)}%`, t.client_cpu_pct === null ? "—" : `${fixed(t.client_cpu_pct)}%`, fixed(t.server_elu, 2),
        other(t.other_cpu_pct),
      ]),
    ),
    ...s.throughput.filter((t) => t.errors > 0).map((t) => `errors: ${t.name}: ${t.errors} (first: ${t.first_error})`),
  );
  for (const b of report.breakdown) {
    const lat = s.latency.find((l) => l.model === b.model);
    const measured = new Map<Side, number>((lat?.sides ?? []).map((x) => [x.side, x.overhead_p50_us]));
    out.push(
      "",
      breakdownTable(b, measured),
      `worker's own session.run: ${fixed(b.workerRunUs)} µs (median); other processes used ${other(b.otherCpuPct)} CPU meanwhile`,
    );
  }
  out.push(
    "",
    "raw = onnxruntime-node in the bench's main thread, same file and session options; a fresh ort.Tensor per run.",
    "Inferno latency is client-side (fetch in the bench process → last response byte, body read as text, not parsed);",
    "the node:http row sends the data_b64 body with a keep-alive http.Agent, to show how much of the overhead is fetch's.",
    "Throughput clients use node:http with one keep-alive connection each.",
    "CPU % = process CPU time over the window / window length (100% = one core); the server's process includes its",
    "onnxruntime worker threads. other CPU = what the rest of the machine used meanwhile (/proc/stat less the bench's",
    "processes): well above 0 means the figures were taken on a busy machine. ELU = event-loop utilization of the",
    "server's main thread. req/run = requests per session.run (dynamic batching merges same-shaped requests;",
    "mnist-8 has a fixed batch dim of 1, so it can't batch).",
  );
  return out.join("\n");
}
