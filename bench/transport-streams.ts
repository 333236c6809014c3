// The streaming part of the transport bench: greedy token streams of a GGUF through ModelStreamInfer and through
// SSE (POST /inference/stream), one stream on a parallel-1 server and N at once on a parallel-N server.
import path from "node:path";
import { connect, grpcChannels, streamGeneration, streamInferRequest } from "./grpc-bench-client.js";
import { rotate } from "./rotate.js";
import { streamAgent, streamConcurrently, type StreamRequest } from "./sse-client.js";
import { aggregateRate, decodeRate, type StreamTiming } from "./stats.js";
import type { TransportBenchOptions } from "./transport-args.js";
import { spawnTransportServer } from "./transport-server.js";

const PROMPT = "Once upon a time";
const SETTLE_MS = 100;

export type StreamSide = "sse" | "grpc";

export interface StreamSideRuns {
  /** tok/s of each round (see StreamScenario.measures). */
  rates: number[];
  /** Tokens each round generated, all streams together. */
  tokens: number[];
  /** CPU (all threads) per generated token: the server's process, and the bench's (the client's). */
  serverCpuUsPerToken: number[];
  clientCpuUsPerToken: number[];
}

export interface StreamScenario {
  model: string;
  streams: number;
  parallel: number;
  maxTokens: number;
  measures: string;
  sides: Record<StreamSide, StreamSideRuns>;
  /** Streams that stopped before max_tokens, or failed outright. */
  warnings: string[];
}

interface Round {
  timings: StreamTiming[];
  serverCpuUs: number;
  clientCpuUs: number;
}

async function scenario(modelPath: string, streams: number, opts: TransportBenchOptions): Promise<StreamScenario> {
  const server = await spawnTransportServer({ kind: "gguf", opts: { modelPath, threads: opts.threads, parallel: streams, contextSize: 2048, batchSize: 512 } });
  const [channel] = grpcChannels(server.grpcAddress, 1);
  const agent = streamAgent(streams);
  try {
    await connect([channel!]);
    const req: StreamRequest = { model: server.modelId, prompt: PROMPT, maxTokens: opts.maxTokens, ignoreEos: true };
    const grpcReq = streamInferRequest(req);
    // Each stream of the gRPC side is its own call on the one channel, as each SSE stream is its own request.
    const run: Record<StreamSide, () => Promise<StreamTiming[]>> = {
      sse: () => streamConcurrently(agent, server.url, req, streams),
      grpc: () => Promise.all(Array.from({ length: streams }, () => streamGeneration(channel!, grpcReq))),
    };
    const measured = (side: StreamSide) => async (): Promise<Round> => {
      const before = await server.sample();
      const cpu = process.cpuUsage();
      const timings = await run[side]();
      const used = process.cpuUsage(cpu);
      const after = await server.sample();
      return { timings, serverCpuUs: after.cpuUs - before.cpuUs, clientCpuUs: used.user + used.system };
    };
    await run.sse(); // loads the model
    await run.grpc();
    const names: StreamSide[] = ["sse", "grpc"];
    const rounds = await rotate(opts.streamRuns, names.map(measured), SETTLE_MS);
    const rate = (t: StreamTiming[]) => (streams === 1 ? decodeRate(t[0]!) : aggregateRate(t));
    const warnings = names.flatMap((side, i) =>
      rounds[i]!.flatMap((r) => r.timings.filter((t) => t.tokens !== opts.maxTokens).map((t) => `${side}: a stream ended after ${t.tokens} tokens (${t.finishReason})`)),
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
    ) as Record<StreamSide, StreamSideRuns>;
    return {
      model: path.basename(modelPath, ".gguf"),
      streams,
      parallel: streams,
      maxTokens: opts.maxTokens,
      measures: streams === 1
        ? "decode tok/s of one stream, (n − 1) / (last token − first token), timed client-side on the token events/responses"
        : `aggregate tok/s of ${streams} concurrent streams: all tokens / (last end − first start), prefill included`,
      sides,
      warnings,
    };
  } finally {
    agent.destroy();
    channel?.close();
    await server.close();
  }
}

/** One stream, then --streams at once, on `modelPath`: each on a fresh server whose parallel is the stream count. */
export async function streamPart(modelPath: string, opts: TransportBenchOptions): Promise<StreamScenario[]> {
  const out: StreamScenario[] = [];
  for (const streams of [...new Set([1, opts.streams])]) {
    console.error(`${path.basename(modelPath)}: ${streams} stream${streams === 1 ? "" : "s"}...`);
    out.push(await scenario(modelPath, streams, opts));
  }
  return out;
}
