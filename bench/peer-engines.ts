// The three sides of the peer bench behind one interface: llama.cpp's llama-server, raw node-llama-cpp in a
// child process, and Inferno in a child process. The HTTP clients of the two servers run in the bench's
// process, alike: node:http, token events recognised by prefix, tokens counted as they arrive.
import type http from "node:http";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { forkRpc } from "./child-rpc.js";
import { spawnServer } from "./inferno-server.js";
import { readCpuMs, startLlamaServer } from "./llama-server.js";
import { completionAgent, streamCompletion } from "./llama-server-client.js";
import type { EngineName } from "./peer-args.js";
import { staggeredLoop, type LoopResult } from "./peer-loop.js";
import { streamAgent, streamInference, type StreamHooks } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";


/** What every side gets alike. */
export interface EngineSettings {
  modelPath: string;
  /** llama.cpp threads for one-token batches (one sequence decoding). */
  threads: number;
  /** llama.cpp threads for larger batches: prompts, several sequences at once (llama.cpp's n_threads_batch). */
  batchThreads: number;
  /** Inferno without thread settings (its defaults); the other sides use the counts above. */
  auto?: boolean;
  /** Sequences decoded together (llama-server slots, node-llama-cpp sequences, Inferno `parallel`). */
  parallel: number;
  /** Context per sequence. */
  contextSize: number;
  batchSize: number;
  /** Inferno's config streamIntervalMs (its default when absent). */
  streamIntervalMs?: number;
}

export interface PeerEngine {
  name: EngineName;
  /** How this side was started, for the report. */
  describe: string;
  /** `clients` closed-loop clients, each asking for `maxTokens` tokens of `prompt` (greedy, ignore_eos). */
  loop(prompt: string, maxTokens: number, clients: number, windowMs: number): Promise<LoopResult>;
  /** One request for one token: ms from sending it to its token. `cached: false` keeps the server's prompt cache out. */
  firstToken(prompt: string, cached: boolean): Promise<number>;
  /** Resident set size of the side's process, in bytes. */
  rss(): Promise<number>;
  /** CPU time the side's process has used so far (every thread), in ms. */
  cpuMs(): Promise<number>;
  /** Waits until requests a loop abandoned have stopped running; false if they had not after 10 s. */
  settle(): Promise<boolean>;
  close(): Promise<void>;
}

/** The raw side also tokenizes, to size the long prompt. */
export interface RawEngine extends PeerEngine {
  tokenCount(text: string): Promise<number>;
}

/** What raw-child.js is forked with (`sequenceOrder`: batch as Inferno does, see raw-llama.ts). */
export type RawChildSpec = EngineSettings & { sequenceOrder?: boolean };

/** What the parent may ask raw-child.js. */
export type RawChildRequest =
  | { op: "stats" }
  | { op: "tokenCount"; text: string }
  | { op: "stream"; prompt: string; maxTokens: number }
  /** `streams` generations at once, timed on the child's clock (the transport bench's raw side). */
  | { op: "streams"; prompt: string; maxTokens: number; streams: number }
  | { op: "loop"; prompt: string; maxTokens: number; clients: number; windowMs: number };

async function httpLoop(clients: number, windowMs: number, maxTokens: number, one: (tokens: number, hooks: StreamHooks) => Promise<StreamTiming>): Promise<LoopResult> {
  return staggeredLoop(clients, windowMs, maxTokens, (tokens, signal, onToken) => one(tokens, { signal, onToken }));
}

async function pollIdle(idle: () => Promise<boolean>): Promise<boolean> {
  const deadline = performance.now() + 10_000;
  let quiet = 0;
  while (performance.now() < deadline) {
    quiet = (await idle()) ? quiet + 1 : 0;
    if (quiet >= 2) return true;
    await sleep(50);
  }
  return false;
}

export async function startLlamaServerEngine(bin: string, settings: EngineSettings, logDir: string): Promise<PeerEngine> {
  const server = await startLlamaServer({ ...settings, bin, logFile: path.join(logDir, `llama-server-t${settings.threads}-b${settings.batchThreads}.log`) });
  const agent: http.Agent = completionAgent(256);
  return {
    name: "llama-server",
    describe: `${bin} ${server.args.join(" ")}`,
    loop: (prompt, maxTokens, clients, windowMs) => httpLoop(clients, windowMs, maxTokens, (tokens, hooks) => streamCompletion(agent, server.url, { prompt, maxTokens: tokens }, hooks)),
    firstToken: async (prompt, cached) => {
      const t = await streamCompletion(agent, server.url, { prompt, maxTokens: 1, cachePrompt: cached });
      return t.firstTokenMs - t.startMs;
    },
    rss: async () => server.rss(),
    cpuMs: async () => server.cpuMs(),
    settle: () => pollIdle(server.idle),
    close: async () => {
      agent.destroy();
      await server.close();
    },
  };
}

/** Inferno's requests in flight and queued, from its /metrics (the scrape itself is not counted). */
async function infernoIdle(url: string): Promise<boolean> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const text = await res.text();
  const value = (name: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith(name))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  return value("inferno_requests_in_flight") === 0 && value("inferno_queue_depth") === 0;
}

/** Inferno on its default engine, or with `llamaServer` on its llama-server engine ("inferno-ls"). */
export async function startInfernoEngine(settings: EngineSettings, onServer?: { engine: "llama-server"; llamaServer: string }): Promise<PeerEngine> {
  const server = await spawnServer({ kind: "inferno", opts: { ...settings, ...onServer } });
  const agent = streamAgent(256);
  const request = (prompt: string, maxTokens: number, hooks: StreamHooks = {}) =>
    streamInference(agent, server.url, { model: server.modelId, prompt, maxTokens, ignoreEos: true }, hooks);
  let threads: string;
  let interval = settings.streamIntervalMs !== undefined ? `, streamIntervalMs ${settings.streamIntervalMs}` : "";
  try {
    await request("Hello", 1); // loads the model
    // The counts the loaded model runs on: with `auto`, what Inferno measured at load.
    const res = await fetch(`${server.url}/models/${encodeURIComponent(server.modelId)}`);
    const options = ((await res.json()) as { options?: { threads?: number; batch_threads?: number; stream_interval_ms?: number } }).options;
    threads = options?.threads === undefined ? `threads ${settings.threads}, batchThreads ${settings.batchThreads}` : `threads ${options.threads}, batchThreads ${options.batch_threads}`;
    if (settings.auto) threads = `no thread settings (runs on ${threads})`;
    // What the model's loops group tokens by: the setting, or what its default (auto) came to.
    if (options?.stream_interval_ms !== undefined) interval = `, stream interval ${options.stream_interval_ms} ms${settings.streamIntervalMs === undefined ? " (auto)" : ""}`;
  } catch (err) {
    agent.destroy();
    await server.close();
    throw err;
  }
  return {
    name: onServer ? "inferno-ls" : "inferno",
    describe: `Inferno (bench/server-child.ts)${onServer ? ` on the llama-server engine (${onServer.llamaServer})` : ""} ${threads}, parallel ${settings.parallel}, context ${settings.contextSize} per sequence, batch ${settings.batchSize}${interval}`,
    loop: (prompt, maxTokens, clients, windowMs) => httpLoop(clients, windowMs, maxTokens, (tokens, hooks) => request(prompt, tokens, hooks)),
    // Inferno has no per-request cache switch: the bench makes uncached prompts unique instead (as for every side).
    firstToken: async (prompt) => {
      const t = await request(prompt, 1);
      return t.firstTokenMs - t.startMs;
    },
    rss: async () => (await server.stats()).rss,
    cpuMs: async () => (await server.stats()).cpuUs / 1000,
    settle: () => pollIdle(() => infernoIdle(server.url)),
    close: async () => {
      agent.destroy();
      await server.close();
    },
  };
}

export async function startRawEngine(settings: EngineSettings): Promise<RawEngine> {
  const rpc = await forkRpc<RawChildRequest>(new URL("./raw-child.js", import.meta.url), JSON.stringify(settings), "raw node-llama-cpp child");
  const { ask, child } = rpc;
  return {
    name: "raw",
    describe: `node-llama-cpp in a child process (bench/raw-child.ts): ${settings.parallel} sequences of one context, threads ${settings.threads} (${settings.batchThreads} for batches of several tokens), batch ${settings.batchSize}; requests wait for a free sequence`,
    tokenCount: (text) => ask({ op: "tokenCount", text }),
    loop: (prompt, maxTokens, clients, windowMs) => ask<LoopResult>({ op: "loop", prompt, maxTokens, clients, windowMs }),
    // The child times from its evaluate call to the first token: raw has no request to send.
    firstToken: async (prompt) => (await ask<StreamTiming>({ op: "stream", prompt, maxTokens: 1 })).firstTokenMs,
    rss: async () => (await ask<{ rss: number }>({ op: "stats" })).rss,
    cpuMs: async () => readCpuMs(child.pid!),
    settle: async () => true,
    close: rpc.close,
  };
}
