import { median, quantile } from "./stats.js";

export interface MachineFacts {
  cpu: string;
  cores: number;
  node: string;
  nodeLlamaCpp: string;
  model: string;
  modelBytes: number;
  threads: number;
  contextSize: number;
  batchSize: number;
  prompt: string;
  promptTokens: number;
  /** 1-minute load average when the bench started and ended: other work on the machine shows up here. */
  loadAverage: { start: number; end: number };
}

/** One side's runs in a scenario: a rate (tok/s), the tokens generated and the process CPU per token, per run. */
export interface SideSamples {
  rates: number[];
  tokens: number[];
  /** Process CPU (every thread; on the Inferno side this includes the in-process HTTP client) per token. */
  cpuUsPerToken: number[];
}

/** One scenario's samples for both sides. */
export interface RateScenario {
  name: string;
  /** What the rate is, in words, so the JSON stands on its own. */
  measures: string;
  streams: number;
  parallel: number;
  maxTokens: number;
  raw: SideSamples;
  inferno: SideSamples;
}

export interface TtftScenario {
  name: string;
  measures: string;
  requests: number;
  rawMs: number[];
  infernoMs: number[];
  httpFloorMs: number[];
}

export interface BenchReport {
  facts: MachineFacts;
  runs: number;
  rates: RateScenario[];
  ttft: TtftScenario;
}

const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const ms = (n: number) => `${fixed(n, 2)} ms`;
const range = (xs: number[]) => `${fixed(Math.min(...xs), 0)}–${fixed(Math.max(...xs), 0)}`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Medians and ratios, computed the same way for the table and the JSON. */
export function summarize(report: BenchReport) {
  return {
    rates: report.rates.map((s) => {
      const raw = median(s.raw.rates);
      const inferno = median(s.inferno.rates);
      // Run i of each side ran back to back, so their ratio shares most of the other core's noise.
      const paired = median(s.inferno.rates.map((r, i) => r / s.raw.rates[i]!));
      // Other load on the machine only ever slows a run down, so the best runs are the least disturbed.
      const best = Math.max(...s.inferno.rates) / Math.max(...s.raw.rates);
      const rawCpu = median(s.raw.cpuUsPerToken);
      const infernoCpu = median(s.inferno.cpuUsPerToken);
      return {
        name: s.name, streams: s.streams, raw_tok_s: raw, inferno_tok_s: inferno,
        ratio: inferno / raw, paired_ratio: paired, best_ratio: best,
        raw_cpu_us_per_token: rawCpu, inferno_cpu_us_per_token: infernoCpu,
        // The throughput ratio to expect when the CPUs, not latency, are the limit (a busy or saturated machine).
        cpu_ratio: rawCpu / infernoCpu,
      };
    }),
    ttft: {
      raw_median_ms: median(report.ttft.rawMs),
      raw_p99_ms: quantile(report.ttft.rawMs, 0.99),
      inferno_median_ms: median(report.ttft.infernoMs),
      inferno_p99_ms: quantile(report.ttft.infernoMs, 0.99),
      http_floor_median_ms: median(report.ttft.httpFloorMs),
      http_floor_p99_ms: quantile(report.ttft.httpFloorMs, 0.99),
      // What is left once the runtime's own time and the bare HTTP round trip are taken out.
      inferno_own_median_ms: median(report.ttft.infernoMs) - median(report.ttft.rawMs) - median(report.ttft.httpFloorMs),
    },
  };
}

export function formatReport(report: BenchReport): string {
  const f = report.facts;
  const summary = summarize(report);
  const rateRows = report.rates.map((s, i) => {
    const m = summary.rates[i]!;
    const tokens = (xs: number[]) => `${s.streams > 1 ? `${s.streams}×` : ""}${Math.round(median(xs) / s.streams)}`;
    return [
      s.name,
      tokens(s.raw.tokens),
      `${fixed(m.raw_tok_s)} (${range(s.raw.rates)})`,
      `${fixed(m.inferno_tok_s)} (${range(s.inferno.rates)})`,
      `${fixed(m.ratio, 3)}×`,
      `${fixed(m.paired_ratio, 3)}×`,
      `${fixed(m.best_ratio, 3)}×`,
      `${fixed(m.raw_cpu_us_per_token, 0)} / ${fixed(m.inferno_cpu_us_per_token, 0)}`,
      `${fixed(m.cpu_ratio, 3)}×`,
    ];
  });
  const t = summary.ttft;
  return [
    `cpu: ${f.cpu}, ${f.cores} cores; node ${f.node}; node-llama-cpp ${f.nodeLlamaCpp}`,
    `model: ${f.model} (${f.modelBytes.toLocaleString("en-US")} bytes); threads ${f.threads}; context ${f.contextSize}/sequence; batch ${f.batchSize}`,
    `prompt: ${JSON.stringify(f.prompt)} (${f.promptTokens} tokens with BOS); greedy; median of ${report.runs} runs per side (min–max in brackets)`,
    `load average (1 min): ${fixed(f.loadAverage.start, 2)} at start, ${fixed(f.loadAverage.end, 2)} at end` +
      (Math.max(f.loadAverage.start, f.loadAverage.end) > 0.5 * f.cores ? " (busy machine: expect noise)" : ""),
    "",
    table(
      ["scenario", "tokens/stream", "raw tok/s", "inferno tok/s", "inferno/raw", "paired", "best", "CPU µs/token raw / inferno", "cpu"],
      rateRows,
    ),
    "",
    table(
      ["time to first token", "requests", "median", "p99"],
      [
        ["raw node-llama-cpp", String(report.ttft.requests), ms(t.raw_median_ms), ms(t.raw_p99_ms)],
        ["inferno /inference/stream", String(report.ttft.requests), ms(t.inferno_median_ms), ms(t.inferno_p99_ms)],
        ["http floor (bare Fastify SSE, no model)", String(report.ttft.requests), ms(t.http_floor_median_ms), ms(t.http_floor_p99_ms)],
        ["inferno − raw − http floor", "", ms(t.inferno_own_median_ms), ""],
      ],
    ),
    "",
    "inferno/raw = median inferno / median raw; paired = median over runs of inferno run i / raw run i (adjacent in time);",
    "best = fastest inferno run / fastest raw run. Load from other processes only slows runs down, so on a busy machine",
    "trust best and paired over the medians; on a quiet one the three agree. cpu = raw CPU per token / Inferno CPU per token",
    "(process CPU, all threads, Inferno's including the in-process client): the ratio to expect when the cores are saturated.",
    ...report.rates
      .filter((s) => median(s.raw.tokens) !== median(s.inferno.tokens))
      .map((s) => `note: ${s.name}: the sides generated different token counts (one stopped early), so their rates cover different spans`),
    ...report.rates.map((s) => `${s.name}: ${s.measures}`),
    `${report.ttft.name}: ${report.ttft.measures}`,
  ].join("\n");
}
