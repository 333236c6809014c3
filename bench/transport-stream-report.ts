// The token-stream rows of the transport report: each side's rate over raw node-llama-cpp's, and the goals.
import { fixed, table } from "./onnx-report.js";
import { median } from "./stats.js";
import type { StreamScenario, StreamSide } from "./transport-streams.js";

const LABELS: Record<StreamSide, string> = {
  raw: "raw node-llama-cpp (own process, Inferno's batch order)",
  ipc: "IPC generate, shipped client",
  sse: "SSE POST /inference/stream",
  grpc: "gRPC ModelStreamInfer",
  grpcio: "gRPC ModelStreamInfer, grpcio client (Python)",
};

/** What a report line promises, and whether the run kept it. */
export const goal = (value: number, target: number, atMost: boolean) => ({ value, target, met: atMost ? value <= target : value >= target });

export function streamSummary(s: StreamScenario) {
  const raw = s.sides.raw;
  const sides = Object.entries(s.sides).map(([side, r]) => ({
    side: side as StreamSide, label: LABELS[side as StreamSide],
    tok_s: median(r.rates), tok_s_min: Math.min(...r.rates), tok_s_max: Math.max(...r.rates),
    vs_raw: raw ? median(r.rates) / median(raw.rates) : Number.NaN,
    // Round i of each side ran back to back, so their ratio shares most of the machine's other noise.
    vs_raw_paired: raw ? median(r.rates.map((x, i) => x / raw.rates[i]!)) : Number.NaN,
    server_cpu_us_per_token: median(r.serverCpuUsPerToken), client_cpu_us_per_token: median(r.clientCpuUsPerToken),
  }));
  const rate = (side: StreamSide) => sides.find((x) => x.side === side)?.tok_s;
  const ipc = sides.find((x) => x.side === "ipc");
  const grpc = rate("grpc");
  const grpcio = rate("grpcio");
  const sse = rate("sse");
  return {
    model: s.model, streams: s.streams, parallel: s.parallel, max_tokens: s.maxTokens, measures: s.measures, sides,
    ipc_vs_raw: ipc && raw ? goal(ipc.vs_raw, 0.99, false) : undefined,
    ipc_vs_raw_paired: ipc?.vs_raw_paired,
    grpc_vs_sse: grpc !== undefined && sse !== undefined ? goal(grpc / sse, 0.98, false) : undefined,
    grpc_vs_sse_paired: s.sides.grpc && s.sides.sse ? median(s.sides.grpc.rates.map((r, i) => r / s.sides.sse!.rates[i]!)) : undefined,
    grpcio_vs_sse: grpcio !== undefined && sse !== undefined ? goal(grpcio / sse, 0.98, false) : undefined,
    grpcio_vs_sse_paired: s.sides.grpcio && s.sides.sse ? median(s.sides.grpcio.rates.map((r, i) => r / s.sides.sse!.rates[i]!)) : undefined,
    warnings: s.warnings,
  };
}

type StreamSummary = ReturnType<typeof streamSummary>;

const ratio = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "—" : `${fixed(n, 3)}×`);
export const verdict = (g: { value: number; target: number; met: boolean } | undefined, show: (n: number) => string) =>
  g === undefined ? "not run" : `${show(g.value)} (${g.met ? "meets" : "misses"} the goal of ${show(g.target)})`;

export function streamLines(streams: StreamSummary[], rounds: number): string[] {
  if (streams.length === 0) return [];
  return [
    "",
    `token streams: greedy, ignore_eos, median of ${rounds} rounds per scenario, sides in turn; one server and one raw process per scenario, ` +
      "with parallel = streams; 1 stream: decode tok/s (first to last token); more: all tokens / (last end − first start)",
    table(
      ["model", "streams", "tokens", "side", "tok/s (min–max)", "×raw", "paired ×raw", "server CPU µs/tok", "client CPU µs/tok"],
      streams.flatMap((x) => x.sides.map((y) => [
        x.model, String(x.streams), String(x.max_tokens), y.label, `${fixed(y.tok_s)} (${fixed(y.tok_s_min)}–${fixed(y.tok_s_max)})`,
        y.side === "raw" ? "—" : ratio(y.vs_raw), y.side === "raw" ? "—" : ratio(y.vs_raw_paired),
        fixed(y.server_cpu_us_per_token), fixed(y.client_cpu_us_per_token),
      ])),
    ),
    "server CPU = the server's process, all threads (raw: raw's process); client CPU = the bench's process (grpcio: its Python process).",
    ...streams.flatMap((x) => x.warnings.slice(0, 3).map((w) => `warning: ${x.model}, ${x.streams} streams: ${w}`)),
  ];
}

const plural = (n: number) => `${n} stream${n === 1 ? "" : "s"}`;

export const ipcStreamGoals = (streams: StreamSummary[]) =>
  streams.filter((x) => x.ipc_vs_raw).map((x) => `  ${x.model}, ${plural(x.streams)}: IPC / raw ${verdict(x.ipc_vs_raw, (n) => `${fixed(n, 3)}×`)}, paired ${ratio(x.ipc_vs_raw_paired)}`);

export const grpcStreamGoals = (streams: StreamSummary[]) =>
  streams.filter((x) => x.grpc_vs_sse).map((x) =>
    `  ${x.model}, ${plural(x.streams)}: gRPC / SSE ${verdict(x.grpc_vs_sse, (n) => `${fixed(n, 3)}×`)}, paired ${ratio(x.grpc_vs_sse_paired)}` +
      (x.grpcio_vs_sse ? `; grpcio client / SSE ${verdict(x.grpcio_vs_sse, (n) => `${fixed(n, 3)}×`)}, paired ${ratio(x.grpcio_vs_sse_paired)}` : ""));
