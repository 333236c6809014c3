// The streaming part of the transport bench: greedy token streams of a GGUF through IPC (the shipped client),
// ModelStreamInfer and SSE (POST /inference/stream), against raw node-llama-cpp in a process of its own
// (raw-child.ts); one stream on a parallel-1 server and context, N at once on parallel-N ones.
import path from "node:path";
import { forkRpc } from "./child-rpc.js";
import { connect, grpcChannels, streamGeneration, streamInferRequest } from "./grpc-bench-client.js";
import { GrpcioClient, grpcioPython } from "./grpcio-side.js";
import { ipcClients, ipcGeneration } from "./ipc-bench-client.js";
import type { EngineSettings, RawChildRequest, RawChildSpec } from "./peer-engines.js";
import { rotate } from "./rotate.js";
import { streamAgent, streamConcurrently, type StreamRequest } from "./sse-client.js";
import { aggregateRate, decodeRate, type StreamTiming } from "./stats.js";
import type { TransportBenchOptions } from "./transport-args.js";
import { spawnTransportServer } from "./transport-server.js";

const PROMPT = "Once upon a time";
const SETTLE_MS = 100;

export type StreamSide = "raw" | "ipc" | "sse" | "grpc" | "grpcio";
const SIDES: StreamSide[] = ["raw", "ipc", "sse", "grpc", "grpcio"];

export interface StreamSideRuns {
  /** tok/s of each round (see StreamScenario.measures). */
  rates: number[];
  /** Tokens each round generated, all streams together. */
  tokens: number[];
  /** CPU (all threads) per generated token: the server's process (raw: raw's), and the bench's (the client's). */
  serverCpuUsPerToken: number[];
  clientCpuUsPerToken: number[];
}

export interface StreamScenario {
  model: string;
  streams: number;
  parallel: number;
  maxTokens: number;
  measures: string;
  sides: Partial<Record<StreamSide, StreamSideRuns>>;
  /** Streams that stopped before max_tokens, or failed outright. */
  warnings: string[];
}

interface Round {
  timings: StreamTiming[];
  serverCpuUs: number;
  clientCpuUs: number;
}

/** A grpcio client process of `address` for ModelStreamInfer, or none without a Python that has grpc. */
async function grpcioStreams(address: string): Promise<GrpcioClient | undefined> {
  const python = grpcioPython();
  return python === undefined ? undefined : GrpcioClient.open(python, address);
}

async function scenario(modelPath: string, maxTokens: number, streams: number, opts: TransportBenchOptions): Promise<StreamScenario> {
  // Every side alike: threads for every batch, `streams` sequences, 2048 tokens of context each, batch 512.
  const settings: EngineSettings = { modelPath, threads: opts.llamaThreads, batchThreads: opts.llamaThreads, parallel: streams, contextSize: 2048, batchSize: 512 };
  const server = await spawnTransportServer({ kind: "gguf", opts: settings }, opts.cpuProf);
  const grpcio = opts.ipcOnly ? undefined : await grpcioStreams(server.grpcAddress);
  const names = SIDES.filter((s) => (opts.ipcOnly ? s === "raw" || s === "ipc" : s !== "grpcio" || grpcio !== undefined));
  // Raw batches its sequences in id order as Inferno does (batch-order.ts): the ratio is then the transport's and the
  // server's cost, not that of node-llama-cpp's default order, which splits 8 streams' tokens into several micro-batches.
  const rawSpec: RawChildSpec = { ...settings, sequenceOrder: true };
  const raw = await forkRpc<RawChildRequest>(new URL("./raw-child.js", import.meta.url), JSON.stringify(rawSpec), "raw node-llama-cpp child");
  const [channel] = grpcChannels(server.grpcAddress, 1);
  const [ipc] = await ipcClients(server.ipcSocket, 1);
  const agent = streamAgent(streams);
  try {
    await connect([channel!]);
    const req: StreamRequest = { model: server.modelId, prompt: PROMPT, maxTokens, ignoreEos: true };
    const grpcReq = streamInferRequest(req);
    let grpcioCpuUs = 0;
    const viaGrpcio = async () => {
      const r = await grpcio!.streams(grpcReq, streams);
      grpcioCpuUs += r.cpuUs;
      return r.timings;
    };
    const each = (one: () => Promise<StreamTiming>) => Promise.all(Array.from({ length: streams }, one));
    // Each stream of a server side is its own request (IPC: on the one connection; gRPC: its own call on the one channel).
    const run: Record<StreamSide, () => Promise<StreamTiming[]>> = {
      raw: () => raw.ask({ op: "streams", prompt: PROMPT, maxTokens, streams }),
      ipc: () => each(() => ipcGeneration(ipc!, req)),
      sse: () => streamConcurrently(agent, server.url, req, streams),
      grpc: () => each(() => streamGeneration(channel!, grpcReq)),
      grpcio: viaGrpcio,
    };
    const cpuUs = async (side: StreamSide) => (side === "raw" ? (await raw.ask<{ cpuUs: number }>({ op: "stats" })).cpuUs : (await server.sample()).cpuUs);
    const measured = (side: StreamSide) => async (): Promise<Round> => {
      const before = await cpuUs(side);
      const cpu = process.cpuUsage();
      const grpcioBefore = grpcioCpuUs;
      const timings = await run[side]();
      const used = process.cpuUsage(cpu);
      // The grpcio side's client is its Python process (which says what it used), not the bench's.
      const clientCpuUs = side === "grpcio" ? grpcioCpuUs - grpcioBefore : used.user + used.system;
      return { timings, serverCpuUs: (await cpuUs(side)) - before, clientCpuUs };
    };
    for (const side of names) await run[side](); // loads the model, fills the prompt caches
    const rounds = await rotate(opts.streamRuns, names.map(measured), SETTLE_MS);
    const rate = (t: StreamTiming[]) => (streams === 1 ? decodeRate(t[0]!) : aggregateRate(t));
    const warnings = names.flatMap((side, i) =>
      rounds[i]!.flatMap((r) => r.timings.filter((t) => t.tokens !== maxTokens).map((t) => `${side}: a stream ended after ${t.tokens} tokens (${t.finishReason})`)),
    );
    const sides = Object.fromEntries(
      names.map((side, i) => {
        const rs = rounds[i]!;
        const tokens = rs.map((r) => r.timings.reduce((n, t) => n + t.tokens, 0));
        return [side, {
          rates: rs.map((r) => rate(r.timings)),
          tokens,
          serverCpuUsPerToken: rs.map((r, k) => r.serverCpuUs / tokens[k]!),
          clientCpuUsPerToken: rs.map((r, k) => r.clientCpuUs / tokens[k]!),
        }];
      }),
    );
    return {
      model: path.basename(modelPath, ".gguf"),
      streams,
      parallel: streams,
      maxTokens,
      measures: streams === 1
        ? "decode tok/s of one stream, (n − 1) / (last token − first token), timed client-side on the token events (raw: in its loop)"
        : `aggregate tok/s of ${streams} concurrent streams: all tokens / (last end − first start), prefill included`,
      sides,
      warnings,
    };
  } finally {
    agent.destroy();
    grpcio?.close();
    channel?.close();
    ipc?.close();
    await raw.close();
    await server.close();
  }
}

/** One stream, then --streams at once, on `modelPath`: each on a fresh server and raw child whose parallel is the stream count. */
export async function streamPart(modelPath: string, maxTokens: number, opts: TransportBenchOptions): Promise<StreamScenario[]> {
  const out: StreamScenario[] = [];
  for (const streams of [...new Set([1, opts.streams])]) {
    console.error(`${path.basename(modelPath)}: ${streams} stream${streams === 1 ? "" : "s"}...`);
    out.push(await scenario(modelPath, maxTokens, streams, opts));
  }
  return out;
}
