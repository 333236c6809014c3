import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchOptions } from "./args.js";
import { spawnServer, type ChildServer } from "./inferno-server.js";
import type { StreamRequest } from "./sse-client.js";
import { median, quantile } from "./stats.js";

/** Between bursts: the last one's sockets close and its sequences free before the next starts. */
const BURST_SETTLE_MS = 1000;
/** How often the server's RSS is read during a burst, for its peak. */
const RSS_POLL_MS = 100;

/** What one client of a burst got. */
interface BurstAnswer {
  status: number | undefined;
  retryAfter: string | undefined;
  /** ms from the request to its first token event (served) or to the refusal's end (refused). */
  firstMs: number;
  error?: string;
}

/** One burst size: every client's outcome, the wall time, and the server's peak RSS while it ran. */
export interface BurstPoint {
  clients: number;
  served: number;
  /** 503 SERVICE_UNAVAILABLE with a Retry-After header. */
  refused: number;
  /** Anything else: another status, a 503 without Retry-After, a reset or a stream that ended badly. */
  other: number;
  otherErrors: string[];
  /** First request sent to last response ended. */
  wallMs: number;
  servedFirstTokenMs: number[];
  refusedMs: number[];
  peakRss: number;
}

export interface BurstCurve {
  parallel: number;
  /** The server's queueSize; undefined: Inferno's default. */
  queueSize: number | undefined;
  tokensPerRequest: number;
  rss: { loaded: number };
  points: BurstPoint[];
}

/**
 * One streaming request on a connection of its own (a burst is many clients, not one client's pipeline),
 * read to its `done` event. Token events are recognised by their prefix and not parsed.
 */
function burstRequest(agent: http.Agent, baseUrl: string, req: StreamRequest): Promise<BurstAnswer> {
  const body = JSON.stringify({ model: req.model, prompt: req.prompt, max_tokens: req.maxTokens, temperature: 0, stream: true });
  const started = performance.now();
  return new Promise((resolve) => {
    const request = http.request(
      `${baseUrl}/inference/stream`,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = "";
        let firstMs = 0;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (firstMs === 0 && res.statusCode === 200 && chunk.includes('data: {"token"')) firstMs = performance.now() - started;
          text += chunk;
        });
        res.on("error", (err) => resolve({ status: res.statusCode, retryAfter: undefined, firstMs, error: err.message }));
        res.on("end", () => {
          const retryAfter = res.headers["retry-after"];
          if (res.statusCode !== 200) return resolve({ status: res.statusCode, retryAfter, firstMs: performance.now() - started, error: text.slice(0, 200) });
          const done = text.includes('"done":true') && !text.includes('"finish_reason":"error"');
          resolve({ status: 200, retryAfter, firstMs, ...(done ? {} : { error: `stream ended without a clean done event: ${text.slice(-200)}` }) });
        });
      },
    );
    request.on("error", (err) => resolve({ status: undefined, retryAfter: undefined, firstMs: 0, error: err.message }));
    request.end(body);
  });
}

async function oneBurst(server: ChildServer, req: StreamRequest, clients: number): Promise<BurstPoint> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  let peakRss = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      peakRss = Math.max(peakRss, (await server.stats()).rss);
      await sleep(RSS_POLL_MS);
    }
  })();
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: clients }, () => burstRequest(agent, server.url, req)));
  const wallMs = performance.now() - started;
  polling = false;
  await poll;
  agent.destroy();
  const served = answers.filter((a) => a.status === 200 && !a.error);
  const refused = answers.filter((a) => a.status === 503 && a.retryAfter !== undefined);
  const other = answers.filter((a) => !served.includes(a) && !refused.includes(a));
  return {
    clients, served: served.length, refused: refused.length, other: other.length,
    otherErrors: [...new Set(other.map((a) => `${a.status ?? "no status"}: ${a.error ?? ""}`))].slice(0, 3),
    wallMs, servedFirstTokenMs: served.map((a) => a.firstMs), refusedMs: refused.map((a) => a.firstMs), peakRss,
  };
}

/**
 * Bursts of N streaming clients that all send at once to a server with `parallel` sequences: how many are
 * served, refused at once with 503 + Retry-After, or fail in any other way, and how long the burst takes.
 */
export async function burstCurve(opts: BenchOptions): Promise<BurstCurve> {
  const server = await spawnServer({
    kind: "inferno",
    opts: {
      modelPath: opts.model, threads: opts.threads, parallel: opts.parallel, contextSize: opts.contextSize, batchSize: opts.batchSize,
      ...(opts.burstQueue !== undefined ? { queueSize: opts.burstQueue } : {}),
    },
  });
  try {
    const req = { model: server.modelId, prompt: opts.prompt, maxTokens: opts.burstTokens };
    await server.stream(req, opts.parallel); // loads the model and warms every sequence
    const loaded = (await server.stats()).rss;
    const points: BurstPoint[] = [];
    for (const clients of opts.bursts) {
      await sleep(BURST_SETTLE_MS);
      points.push(await oneBurst(server, req, clients));
    }
    return { parallel: opts.parallel, queueSize: opts.burstQueue, tokensPerRequest: opts.burstTokens, rss: { loaded }, points };
  } finally {
    await server.close();
  }
}

const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : "n/a");

export function burstSummary(c: BurstCurve) {
  return c.points.map((p) => ({
    clients: p.clients, served: p.served, refused_503: p.refused, other: p.other, wall_s: p.wallMs / 1000,
    served_ttft_p50_ms: median(p.servedFirstTokenMs), served_ttft_p99_ms: quantile(p.servedFirstTokenMs, 0.99),
    refused_p50_ms: median(p.refusedMs), peak_rss_bytes: p.peakRss, rss_growth_bytes: p.peakRss - c.rss.loaded,
  }));
}

export function burstSection(c: BurstCurve | undefined, table: (header: string[], rows: string[][]) => string): string[] {
  if (!c) return [];
  const rows = burstSummary(c).map((p) => [
    String(p.clients), String(p.served), String(p.refused_503), String(p.other), `${p.wall_s.toFixed(1)} s`,
    `${ms(p.served_ttft_p50_ms)} / ${ms(p.served_ttft_p99_ms)}`, ms(p.refused_p50_ms), `${(p.rss_growth_bytes / 2 ** 20).toFixed(1)} MiB`,
  ]);
  return [
    "",
    `bursts: N streaming clients sending at once, each on its own connection, ${c.tokensPerRequest} tokens each, ` +
      `server with parallel ${c.parallel} and queueSize ${c.queueSize ?? "default"}`,
    table(["clients", "served", "503 + Retry-After", "other", "wall", "served TTFT p50 / p99", "503 after (p50)", "peak RSS growth"], rows),
    ...c.points.flatMap((p) => p.otherErrors.map((e) => `other at ${p.clients} clients: ${e}`)),
  ];
}
