import type http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Llama } from "node-llama-cpp";
import type { BenchOptions } from "./args.js";
import { closedLoop, type WindowResult } from "./closed-loop.js";
import { spawnServer, type ChildServer } from "./inferno-server.js";
import { RawLlama } from "./raw-llama.js";
import { streamAgent, streamConcurrently, streamInference, type StreamRequest } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";

/** Lets the side that just ran finish its cleanup (socket close, sequence release) before the other starts. */
export const SETTLE_MS = 100;

/** Sends the Inferno side's requests, from wherever --client puts the client. */
export interface InfernoClient {
  stream(req: StreamRequest, streams: number): Promise<StreamTiming[]>;
  loop(req: StreamRequest, clients: number, windowMs: number): Promise<WindowResult>;
}

/** The two sides of a scenario: node-llama-cpp in this process, Inferno in a child process with the same settings. */
export interface Pair {
  raw: RawLlama;
  server: ChildServer;
  inferno: InfernoClient;
  agent: http.Agent;
}

function clientAt(where: BenchOptions["client"], server: ChildServer, agent: http.Agent): InfernoClient {
  if (where === "server") return server;
  return {
    stream: (req, streams) => streamConcurrently(agent, server.url, req, streams),
    loop: (req, clients, windowMs) =>
      closedLoop(clients, windowMs, (_client, signal, onToken) => streamInference(agent, server.url, req, { signal, onToken })),
  };
}

export async function openPair(llama: Llama, opts: BenchOptions, parallel: number, threads = opts.threads): Promise<Pair> {
  const ctx = { contextSize: opts.contextSize, threads, batchSize: opts.batchSize };
  const raw = await RawLlama.open(llama, opts.model, { ...ctx, sequences: parallel });
  try {
    const server = await spawnServer({ kind: "inferno", opts: { ...ctx, modelPath: opts.model, parallel } });
    const agent = streamAgent(64);
    return { raw, server, agent, inferno: clientAt(opts.client, server, agent) };
  } catch (err) {
    await raw.dispose();
    throw err;
  }
}

export async function closePair(pair: Pair): Promise<void> {
  pair.agent.destroy();
  await pair.server.close();
  await pair.raw.dispose();
}

export interface Measured<T> {
  value: T;
  /** CPU time (user + system, all threads) the run took, in microseconds: this process's for raw, the server's for Inferno. */
  cpuUs: number;
}

/**
 * Runs the two sides one after the other, `n` times, swapping which goes first so that drift cancels.
 * Each side is charged its own process's CPU: this one for raw, the server's (asked over IPC) for Inferno.
 */
export async function alternate<T>(
  n: number,
  raw: () => Promise<T>,
  inferno: () => Promise<T>,
  server: ChildServer,
  settleMs = SETTLE_MS,
): Promise<{ raw: Measured<T>[]; inferno: Measured<T>[] }> {
  const out = { raw: [] as Measured<T>[], inferno: [] as Measured<T>[] };
  for (let i = 0; i < n; i++) {
    const order = i % 2 === 0 ? (["raw", "inferno"] as const) : (["inferno", "raw"] as const);
    for (const side of order) {
      if (side === "raw") {
        const before = process.cpuUsage();
        const value = await raw();
        const cpu = process.cpuUsage(before);
        out.raw.push({ value, cpuUs: cpu.user + cpu.system });
      } else {
        const before = (await server.stats()).cpuUs;
        const value = await inferno();
        out.inferno.push({ value, cpuUs: (await server.stats()).cpuUs - before });
      }
      await sleep(settleMs);
    }
  }
  return out;
}

/** The tokens per stream of every run, sized by a raw warm-up run stopped at --run-seconds. */
export async function sizeRuns(opts: BenchOptions, label: string, probe: (deadlineMs: number) => Promise<StreamTiming[]>, minTokens = 16): Promise<number> {
  const reached = Math.min(...(await probe(performance.now() + opts.runSeconds * 1000)).map((t) => t.tokens));
  const tokens = Math.max(minTokens, Math.min(opts.maxTokens, reached));
  if (tokens < opts.maxTokens) {
    console.error(`${label}: ${tokens} tokens per stream instead of ${opts.maxTokens}, to keep a run near ${opts.runSeconds} s (--run-seconds)`);
  }
  return tokens;
}
