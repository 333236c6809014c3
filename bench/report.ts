import { burstSection, burstSummary, type BurstCurve } from "./burst.js";
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
  quick: boolean;
  client: "server" | "separate";
}

/** One side's runs in a scenario: a rate (tok/s), the tokens generated and the CPU per token, per run. */
export interface SideSamples {
  rates: number[];
  tokens: number[];
  /** CPU (every thread) per token of the side's own process: the bench's for raw, the server's for Inferno. */
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

/** One client count of the load curve, over every run. */
export interface ClientPoint {
  clients: number;
  /** Raw aggregate tok/s of min(clients, parallel) closed-loop streams, one per run. */
  rawRates: number[];
  infernoRates: number[];
  /** Messages of the requests that failed. */
  errors: string[];
  /** Time to first token of every request whose first token came inside the window (queue wait included). */
  ttftMs: number[];
}

export interface ClientCurve {
  parallel: number;
  tokensPerRequest: number;
  windowSeconds: number;
  runs: number;
  points: ClientPoint[];
  /** The curve's server process, in bytes: started with nothing loaded, after loading and warming the model, after the curve. */
  rss: { idle: number; loaded: number; afterCurve: number };
}

export interface ThreadPoint {
  threads: number;
  streams: number;
  tokens: number;
  rawRates: number[];
  infernoRates: number[];
}

export interface ThreadCurve {
  points: ThreadPoint[];
}

export interface BenchReport {
  facts: MachineFacts;
  runs: number;
  rates: RateScenario[];
  ttft?: TtftScenario;
  clients?: ClientCurve;
  threads?: ThreadCurve;
  bursts?: BurstCurve;
}

const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const ms = (n: number) => `${fixed(n, 2)} ms`;
const mib = (bytes: number) => `${fixed(bytes / 2 ** 20, 1)} MiB`;
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
      const rawCpu = median(s.raw.cpuUsPerToken);
      const infernoCpu = median(s.inferno.cpuUsPerToken);
      return {
        name: s.name, streams: s.streams, raw_tok_s: raw, inferno_tok_s: inferno,
        ratio: inferno / raw,
        // Run i of each side ran back to back, so their ratio shares most of the machine's other noise.
        paired_ratio: median(s.inferno.rates.map((r, i) => r / s.raw.rates[i]!)),
        // Other load on the machine only ever slows a run down, so the best runs are the least disturbed.
        best_ratio: Math.max(...s.inferno.rates) / Math.max(...s.raw.rates),
        raw_cpu_us_per_token: rawCpu,
        inferno_cpu_us_per_token: infernoCpu,
      };
    }),
    ttft: report.ttft && ttftSummary(report.ttft),
    clients: report.clients && clientSummary(report.clients),
    rss_bytes: report.clients?.rss,
    threads: report.threads?.points.map((p) => ({
      threads: p.threads,
      streams: p.streams,
      tokens: p.tokens,
      raw_tok_s: median(p.rawRates),
      inferno_tok_s: median(p.infernoRates),
      ratio: median(p.infernoRates) / median(p.rawRates),
    })),
    bursts: report.bursts && burstSummary(report.bursts),
  };
}

function ttftSummary(t: TtftScenario) {
  return {
      raw_p50_ms: median(t.rawMs),
      raw_p99_ms: quantile(t.rawMs, 0.99),
      inferno_p50_ms: median(t.infernoMs),
      inferno_p99_ms: quantile(t.infernoMs, 0.99),
      http_floor_p50_ms: median(t.httpFloorMs),
      http_floor_p99_ms: quantile(t.httpFloorMs, 0.99),
      overhead_p50_ms: median(t.infernoMs) - median(t.rawMs),
      overhead_p99_ms: quantile(t.infernoMs, 0.99) - quantile(t.rawMs, 0.99),
      // What is left once the runtime's own time and the bare HTTP round trip are taken out.
      inferno_own_p50_ms: median(t.infernoMs) - median(t.rawMs) - median(t.httpFloorMs),
  };
}

function clientSummary(c: ClientCurve) {
  return c.points.map((p) => ({
    clients: p.clients,
    raw_streams: Math.min(p.clients, c.parallel),
    raw_tok_s: median(p.rawRates),
    inferno_tok_s: median(p.infernoRates),
    ratio: median(p.infernoRates) / median(p.rawRates),
    errors: p.errors.length,
    ttft_p50_ms: median(p.ttftMs),
    ttft_p99_ms: quantile(p.ttftMs, 0.99),
  }));
}

type Summary = ReturnType<typeof summarize>;

function rateSection(report: BenchReport, summary: Summary): string[] {
  if (report.rates.length === 0) return [];
  const rows = report.rates.map((s, i) => {
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
    ];
  });
  return [
    "",
    table(["scenario", "tokens/stream", "raw tok/s", "inferno tok/s", "inferno/raw", "paired", "best", "CPU µs/token raw / server"], rows),
    ...report.rates
      .filter((s) => median(s.raw.tokens) !== median(s.inferno.tokens))
      .map((s) => `note: ${s.name}: the sides generated different token counts (one stopped early), so their rates cover different spans`),
  ];
}

function ttftSection(ttft: TtftScenario | undefined, t: Summary["ttft"]): string[] {
  if (!ttft || !t) return [];
  const n = String(ttft.requests);
  return [
    "",
    table(
      ["time to first token", "requests", "p50", "p99"],
      [
        ["raw node-llama-cpp", n, ms(t.raw_p50_ms), ms(t.raw_p99_ms)],
        ["inferno /inference/stream", n, ms(t.inferno_p50_ms), ms(t.inferno_p99_ms)],
        ["overhead: inferno − raw", "", ms(t.overhead_p50_ms), ms(t.overhead_p99_ms)],
        ["http floor (bare Fastify SSE, no model)", n, ms(t.http_floor_p50_ms), ms(t.http_floor_p99_ms)],
        ["inferno − raw − http floor", "", ms(t.inferno_own_p50_ms), ""],
      ],
    ),
  ];
}

function clientSection(c: ClientCurve | undefined, points: Summary["clients"], contextSize: number): string[] {
  if (!c || !points) return [];
  return [
    "",
    `load curve: closed-loop clients (each sends its next request when the last ends), requests of ${c.tokensPerRequest} tokens, ` +
      `server with parallel ${c.parallel} (the rest queue); tokens counted in a ${c.windowSeconds} s window; ` +
      `median of ${c.runs} run${c.runs > 1 ? "s" : ""}; raw = min(clients, ${c.parallel}) back-to-back evaluate loops`,
    table(
      ["clients", "raw tok/s", "inferno tok/s", "inferno/raw", "errors", "TTFT p50", "TTFT p99"],
      points.map((p) => [
        String(p.clients), fixed(p.raw_tok_s), fixed(p.inferno_tok_s), `${fixed(p.ratio, 3)}×`, String(p.errors), ms(p.ttft_p50_ms), ms(p.ttft_p99_ms),
      ]),
    ),
    ...c.points.flatMap((p) => p.errors.slice(0, 3).map((e) => `error at ${p.clients} clients: ${e}`)),
    "",
    `server RSS: ${mib(c.rss.idle)} idle (nothing loaded), ${mib(c.rss.loaded)} with the model loaded (parallel ${c.parallel}, ` +
      `context ${contextSize}), ${mib(c.rss.afterCurve)} after the load curve`,
  ];
}

function threadSection(points: Summary["threads"]): string[] {
  if (!points) return [];
  return [
    "",
    table(
      ["thread curve: llama.cpp threads", "streams", "tokens/stream", "raw decode tok/s", "inferno decode tok/s", "inferno/raw"],
      points.map((p) => [String(p.threads), String(p.streams), String(p.tokens), fixed(p.raw_tok_s), fixed(p.inferno_tok_s), `${fixed(p.ratio, 3)}×`]),
    ),
    "decode tok/s leaves prefill out: Σ(tokens − 1) from the first stream's first token to the last stream's last token.",
  ];
}

export function formatReport(report: BenchReport): string {
  const f = report.facts;
  const summary = summarize(report);
  return [
    `cpu: ${f.cpu}, ${f.cores} cores; node ${f.node}; node-llama-cpp ${f.nodeLlamaCpp}${f.quick ? "; --quick" : ""}; client in the ${f.client === "server" ? "server's process" : "bench's process"}`,
    `model: ${f.model} (${f.modelBytes.toLocaleString("en-US")} bytes); threads ${f.threads}; context ${f.contextSize}/sequence; batch ${f.batchSize}`,
    `prompt: ${JSON.stringify(f.prompt)} (${f.promptTokens} tokens with BOS); greedy; median of ${report.runs} runs per side (min–max in brackets)`,
    `load average (1 min): ${fixed(f.loadAverage.start, 2)} at start, ${fixed(f.loadAverage.end, 2)} at end` +
      (Math.max(f.loadAverage.start, f.loadAverage.end) > 0.5 * f.cores ? " (busy machine: expect noise)" : ""),
    ...rateSection(report, summary),
    ...ttftSection(report.ttft, summary.ttft),
    ...clientSection(report.clients, summary.clients, f.contextSize),
    ...threadSection(summary.threads),
    ...burstSection(report.bursts, table),
    "",
    "inferno/raw = median inferno / median raw; paired = median over runs of inferno run i / raw run i (adjacent in time);",
    "best = fastest inferno run / fastest raw run. Load from other processes only slows runs down, so on a busy machine",
    "trust best and paired over the medians; on a quiet one the three agree. CPU per token: raw's process against the",
    "server's process (with the client in it when --client server).",
    ...report.rates.map((s) => `${s.name}: ${s.measures}`),
    ...(report.ttft ? [`${report.ttft.name}: ${report.ttft.measures}`] : []),
  ].join("\n");
}
