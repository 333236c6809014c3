import { formatThreads, type EngineName, type ThreadSetting } from "./peer-args.js";
import type { LoopResult } from "./peer-loop.js";
import { median, quantile } from "./stats.js";

export interface PeerFacts {
  cpu: string;
  cores: number;
  node: string;
  nodeLlamaCpp: string;
  llamaCppTag: string;
  llamaServer: { path: string; version: string } | undefined;
  model: string;
  modelBytes: number;
  parallel: number;
  contextSize: number;
  batchSize: number;
  maxTokens: number;
  windowSeconds: number;
  runs: number;
  prompt: string;
  promptTokens: number;
  uvThreadpoolSize: string;
  /** 1-minute load average when the bench started and ended: other work on the machine shows up here. */
  loadAverage: { start: number; end: number };
  seconds: number;
}

/** One engine at one thread setting: every run's samples. */
export interface EngineResult {
  engine: EngineName;
  describe: string;
  /** Per client count, one closed-loop window per run. */
  rows: Array<{ clients: number; runs: LoopResult[] }>;
  /** Time to first token of the uncached long prompts, and their lengths. */
  ppMs: number[];
  ppTokens: number[];
  /** Time to first token of the short cached prompt, every request of every run. */
  ttftMs: number[];
  rssBytes: number;
  /** Windows after which abandoned requests still ran 10 s later (the next window then shared the machine). */
  unsettled: number;
}

export interface SettingResult {
  setting: ThreadSetting;
  engines: EngineResult[];
  /** Cores that processes other than the bench's used while this setting was measured (/proc/stat less the bench and its sides); null off Linux. */
  otherCores: number | null;
}

export interface PeerReport {
  facts: PeerFacts;
  settings: SettingResult[];
}

/** The figures of one engine at one setting, as the table shows them. */
export interface EngineSummary {
  /** Median aggregate tok/s per client count, and the errors over all runs. */
  rates: Record<number, { rate: number; errors: number }>;
  /** Median decode tok/s of the 1-client requests that ran to max_tokens. */
  decode1: number;
  ppRate: number;
  ttftP50: number;
  ttftP99: number;
  rssMiB: number;
}

export function summarizeEngine(r: EngineResult): EngineSummary {
  const rates: EngineSummary["rates"] = {};
  for (const row of r.rows) {
    rates[row.clients] = { rate: median(row.runs.map((w) => w.rate)), errors: row.runs.reduce((n, w) => n + w.errors.length, 0) };
  }
  const one = r.rows.find((row) => row.clients === 1);
  return {
    rates,
    decode1: one ? median(one.runs.flatMap((w) => w.decodeRates)) : Number.NaN,
    ppRate: median(r.ppMs.map((ms, i) => (r.ppTokens[i]! * 1000) / ms)),
    ttftP50: quantile(r.ttftMs, 0.5),
    ttftP99: quantile(r.ttftMs, 0.99),
    rssMiB: r.rssBytes / 2 ** 20,
  };
}

const LABEL: Record<EngineName, string> = { "llama-server": "llama-server", raw: "raw", inferno: "Inferno", "inferno-ls": "Inferno (llama-server engine)" };

/** The comparison columns: each Inferno side against each side that is not Inferno. */
function pairs(engines: EngineName[]): Array<[EngineName, EngineName]> {
  const isInferno = (e: EngineName) => e.startsWith("inferno");
  return engines.filter(isInferno).flatMap((i) => engines.filter((o) => !isInferno(o)).map((o): [EngineName, EngineName] => [i, o]));
}
const num = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "—");
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "—");
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "—");
const diff = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${a >= b ? "+" : "−"}${Math.abs(a - b).toFixed(2)}` : "—");

/** A row: a label, one cell per engine, and Inferno against the two others. */
interface Metric {
  label: string;
  value: (s: EngineSummary) => number;
  cell: (s: EngineSummary) => string;
  /** How Inferno compares: a ratio of values, or for times a difference in ms. */
  compare: (inferno: EngineSummary, other: EngineSummary) => string;
  /** Which is the best setting: the higher or the lower value. */
  better: "higher" | "lower";
}

function metrics(clients: number[], ppTokens: number): Metric[] {
  const rows: Metric[] = [];
  for (const c of clients) {
    const rate = (s: EngineSummary) => s.rates[c]?.rate ?? Number.NaN;
    const errors = (s: EngineSummary) => s.rates[c]?.errors ?? 0;
    rows.push({
      label: `${c} client${c === 1 ? "" : "s"}, tok/s`,
      value: rate,
      cell: (s) => `${num(rate(s))}${errors(s) > 0 ? ` (${errors(s)} errors)` : ""}`,
      compare: (i, o) => ratio(rate(i), rate(o)),
      better: "higher",
    });
    if (c === 1) {
      rows.push({ label: "1 client, decode tok/s per stream", value: (s) => s.decode1, cell: (s) => num(s.decode1), compare: (i, o) => ratio(i.decode1, o.decode1), better: "higher" });
    }
  }
  rows.push(
    { label: `pp${ppTokens}, tok/s`, value: (s) => s.ppRate, cell: (s) => num(s.ppRate), compare: (i, o) => ratio(i.ppRate, o.ppRate), better: "higher" },
    {
      label: "TTFT p50 / p99, ms",
      value: (s) => s.ttftP50,
      cell: (s) => `${ms(s.ttftP50)} / ${ms(s.ttftP99)}`,
      compare: (i, o) => `${diff(i.ttftP50, o.ttftP50)} / ${diff(i.ttftP99, o.ttftP99)} ms`,
      better: "lower",
    },
    { label: "RSS, MiB", value: (s) => s.rssMiB, cell: (s) => num(s.rssMiB), compare: (i, o) => ratio(i.rssMiB, o.rssMiB), better: "lower" },
  );
  return rows;
}

function table(engines: EngineName[], rows: Array<{ label: string; cells: string[]; compare: string[] }>): string {
  const compared = pairs(engines).map(([i, o]) => `${LABEL[i]} / ${LABEL[o]}`);
  const head = ["", ...engines.map((e) => LABEL[e]), ...compared];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) lines.push(`| ${[r.label, ...r.cells, ...r.compare].join(" | ")} |`);
  return lines.join("\n");
}

export function formatPeerReport(report: PeerReport, clients: number[]): string {
  const f = report.facts;
  const out: string[] = [];
  out.push(
    `machine: ${f.cpu}, ${f.cores} cores, Node ${f.node}, node-llama-cpp ${f.nodeLlamaCpp}, llama.cpp ${f.llamaCppTag}` +
      (f.llamaServer ? ` (llama-server ${f.llamaServer.version}: ${f.llamaServer.path})` : ""),
    `model: ${f.model} (${(f.modelBytes / 2 ** 20).toFixed(1)} MiB); ${f.parallel} sequences / slots, context ${f.contextSize} per sequence, batch ${f.batchSize}`,
    `load: ${f.maxTokens} tokens per request (greedy, ignore_eos), prompt "${f.prompt}" (${f.promptTokens} tokens), closed loops of ${f.windowSeconds} s after 0.4 s, ` +
      `${f.runs} run(s) alternating engines, medians; UV_THREADPOOL_SIZE ${f.uvThreadpoolSize} for node-llama-cpp's processes`,
    `1-minute load average: ${f.loadAverage.start.toFixed(2)} at the start, ${f.loadAverage.end.toFixed(2)} at the end; took ${f.seconds.toFixed(0)} s`,
  );
  const engines = report.settings[0]?.engines.map((e) => e.engine) ?? [];
  const ppTokens = Math.round(median(report.settings.flatMap((s) => s.engines.flatMap((e) => e.ppTokens))));
  const rowsOf = metrics(clients, ppTokens);
  const byEngine = report.settings.map((s) => new Map(s.engines.map((e) => [e.engine, summarizeEngine(e)])));
  report.settings.forEach((s, i) => {
    const sums = byEngine[i]!;
    const counts = `one-token batches / larger batches: ${s.setting.threads} / ${s.setting.batchThreads}`;
    out.push("", `threads ${formatThreads(s.setting)} (${s.setting.auto ? `Inferno's defaults, measured at load; the others ${counts}` : counts})`, "");
    if (s.setting.auto) for (const e of s.engines.filter((x) => x.engine.startsWith("inferno"))) out.push(`${LABEL[e.engine]}: ${e.describe}`, "");
    out.push(
      table(
        engines,
        rowsOf.map((m) => ({
          label: m.label,
          cells: engines.map((e) => m.cell(sums.get(e)!)),
          compare: pairs(engines).map(([a, b]) => m.compare(sums.get(a)!, sums.get(b)!)),
        })),
      ),
    );
    const merged = s.engines.filter((e) => e.rows.some((r) => r.runs.some((w) => w.merged > 0))).map((e) => LABEL[e.engine]);
    if (merged.length > 0) out.push(`(${merged.join(", ")}: stream events that carried several tokens; the client-count rows undercount these sides)`);
    if (s.otherCores !== null) {
      out.push(`other work on the machine meanwhile: ${s.otherCores.toFixed(2)} cores${s.otherCores > 0.2 ? " (it took CPU from the bench: these figures are noisy)" : ""}`);
    }
    const unsettled = s.engines.filter((e) => e.unsettled > 0).map((e) => `${LABEL[e.engine]} ${e.unsettled}×`);
    if (unsettled.length > 0) out.push(`(still busy 10 s after a window: ${unsettled.join(", ")}; the next window shared the machine)`);
  });
  if (report.settings.length > 1) {
    out.push("", "best setting of each (threads after @)", "");
    const best = (m: Metric, e: EngineName) => {
      let at = 0;
      byEngine.forEach((sums, i) => {
        const v = m.value(sums.get(e)!);
        const cur = m.value(byEngine[at]!.get(e)!);
        if (Number.isFinite(v) && (!Number.isFinite(cur) || (m.better === "higher" ? v > cur : v < cur))) at = i;
      });
      return { summary: byEngine[at]!.get(e)!, setting: report.settings[at]!.setting };
    };
    out.push(
      table(
        engines,
        rowsOf.map((m) => {
          const picks = new Map(engines.map((e) => [e, best(m, e)]));
          return {
            label: m.label,
            cells: engines.map((e) => `${m.cell(picks.get(e)!.summary)} @${formatThreads(picks.get(e)!.setting)}`),
            compare: pairs(engines).map(([a, b]) => m.compare(picks.get(a)!.summary, picks.get(b)!.summary)),
          };
        }),
      ),
    );
  }
  return out.join("\n");
}
