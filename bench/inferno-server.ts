import { mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../src/config/config.js";
import { buildServer } from "../src/server.js";
import { forkRpc } from "./child-rpc.js";
import type { WindowResult } from "./closed-loop.js";
import type { StreamRequest } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";

export interface InfernoOptions {
  modelPath: string;
  threads: number;
  /** llama.cpp threads for batches of more than one token; `threads` when absent, as raw node-llama-cpp runs. */
  batchThreads?: number;
  /** Neither thread count given: Inferno's defaults, measured at load (thread-tuning.ts). */
  auto?: boolean;
  parallel: number;
  contextSize: number;
  batchSize: number;
  /** Requests that may wait per model; Inferno's default when absent. */
  queueSize?: number;
  /** The GGUF engine (Inferno's default when absent) and, for "llama-server", its binary. */
  engine?: "node-llama-cpp" | "llama-server";
  llamaServer?: string;
  /** Also serve the IPC protocol on this Unix socket (listened on by the caller, `app.ipc.listen()`). */
  ipcSocket?: string;
  /** Export traces over OTLP to this endpoint (config otlpEndpoint). */
  otlpEndpoint?: string;
  /** Config streamIntervalMs (Inferno's default when absent). */
  streamIntervalMs?: number;
}

export interface BenchServer {
  url: string;
  /** The id under which the model is served (its file name without `.gguf`). */
  modelId: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * A real Inferno on an ephemeral loopback port, serving one GGUF file from a throwaway models dir.
 * The model loads on the first request, so the caller's warm-up pays for it.
 */
export async function startInferno(opts: InfernoOptions): Promise<BenchServer> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-bench-"));
  const modelsDir = path.join(tmp, "models");
  await mkdir(modelsDir);
  const real = await realpath(opts.modelPath);
  const modelId = path.basename(real, ".gguf");
  await symlink(real, path.join(modelsDir, `${modelId}.gguf`));
  const config = loadConfig({
    env: {},
    flags: {
      port: 0,
      gpu: "cpu",
      // As many as raw node-llama-cpp gets (one count for every batch) unless the caller says otherwise.
      ...(opts.auto ? {} : { threads: opts.threads, batchThreads: opts.batchThreads ?? opts.threads }),
      parallel: opts.parallel,
      contextSize: opts.contextSize,
      batchSize: opts.batchSize,
      ...(opts.queueSize !== undefined ? { queueSize: opts.queueSize } : {}),
      ...(opts.engine ? { ggufEngine: opts.engine } : {}),
      ...(opts.llamaServer ? { llamaServer: opts.llamaServer } : {}),
      ...(opts.ipcSocket ? { ipcSocket: opts.ipcSocket } : {}),
      ...(opts.otlpEndpoint ? { otlpEndpoint: opts.otlpEndpoint } : {}),
      ...(opts.streamIntervalMs !== undefined ? { streamIntervalMs: opts.streamIntervalMs } : {}),
      keepAlive: -1,
      logLevel: "silent",
      modelsDir,
      dataDir: path.join(tmp, "data"),
      modelRoots: [path.dirname(real)],
    },
  });
  const app = await buildServer(config);
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
  } catch (err) {
    await app.close();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    modelId,
    app,
    close: async () => {
      await app.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** What `server-child.js` runs: Inferno, or the bare Fastify SSE route of `http-floor.ts`. */
export type ChildSpec = { kind: "inferno"; opts: InfernoOptions } | { kind: "floor" };

/** What the parent may ask the child. */
export type ChildRequest =
  | { op: "stats" }
  | { op: "stream"; req: StreamRequest; streams: number }
  | { op: "loop"; req: StreamRequest; clients: number; windowMs: number };

export interface ServerStats {
  rss: number;
  cpuUs: number;
}

/** A server in its own process, as in a deployment: the raw side never shares its event loop or its async hooks. */
export interface ChildServer {
  url: string;
  modelId: string;
  /** The server process's own view of itself: resident set size in bytes (`process.memoryUsage().rss`) and CPU time used so far in µs (all threads). */
  stats(): Promise<ServerStats>;
  /** `streams` concurrent requests sent from inside the server's process. */
  stream(req: StreamRequest, streams: number): Promise<StreamTiming[]>;
  /** A closed loop of `clients` run from inside the server's process. */
  loop(req: StreamRequest, clients: number, windowMs: number): Promise<WindowResult>;
  close(): Promise<void>;
}

export async function spawnServer(spec: ChildSpec): Promise<ChildServer> {
  const rpc = await forkRpc<ChildRequest>(new URL("./server-child.js", import.meta.url), JSON.stringify(spec), "bench server");
  const { ask } = rpc;
  return {
    ...(rpc.ready as { url: string; modelId: string }),
    stats: () => ask({ op: "stats" }),
    stream: (req, streams) => ask({ op: "stream", req, streams }),
    loop: (req, clients, windowMs) => ask({ op: "loop", req, clients, windowMs }),
    close: rpc.close,
  };
}
