// A transport bench server in its own process: a real Inferno with HTTP and gRPC listening on loopback and IPC on a Unix socket.
import { forkRpc } from "./child-rpc.js";
import type { InfernoOptions } from "./inferno-server.js";

/** What `transport-server-child.js` serves: ONNX files under their ids (each loaded with the server's defaults), one GGUF, or the bare floor servers. */
export type TransportServerSpec =
  | { kind: "onnx"; models: Record<string, string>; threads: number }
  | { kind: "gguf"; opts: InfernoOptions }
  | { kind: "floor" };

/** The server process's counters so far; the difference of two samples covers the span between them. */
export interface ServerSample {
  /** CPU time of the whole process (all threads), µs. */
  cpuUs: number;
  /** performance.eventLoopUtilization() of its main thread: cumulative idle and active ms. */
  eluIdle: number;
  eluActive: number;
  /** session.run calls per ONNX model id (a merged batch counts once). */
  sessionRuns: Record<string, number>;
}

export interface TransportServer {
  url: string;
  /** host:port of the gRPC listener. */
  grpcAddress: string;
  /** Path of the IPC socket. */
  ipcSocket: string;
  /** The served model's id (GGUF). */
  modelId: string;
  /** The load options each ONNX model reports (batching). */
  options: Record<string, Record<string, unknown>>;
  sample(): Promise<ServerSample>;
  close(): Promise<void>;
}

/** Forks the server; with `cpuProfDir`, it writes a V8 CPU profile there when it exits (node --cpu-prof). */
export async function spawnTransportServer(spec: TransportServerSpec, cpuProfDir?: string): Promise<TransportServer> {
  const execArgv = cpuProfDir ? [...process.execArgv, "--cpu-prof", "--cpu-prof-dir", cpuProfDir] : undefined;
  const rpc = await forkRpc<{ op: "sample" }>(new URL("./transport-server-child.js", import.meta.url), JSON.stringify(spec), "bench server", execArgv);
  const ready = rpc.ready as Omit<TransportServer, "sample" | "close">;
  return { ...ready, sample: () => rpc.ask({ op: "sample" }), close: rpc.close };
}

/** What the server did between two samples, over `windowMs`: CPU % of one core, main-thread ELU, session runs of `id`. */
export function serverDelta(a: ServerSample, b: ServerSample, windowMs: number, id?: string) {
  const active = b.eluActive - a.eluActive;
  const idle = b.eluIdle - a.eluIdle;
  return {
    cpuMs: (b.cpuUs - a.cpuUs) / 1000,
    cpuPct: ((b.cpuUs - a.cpuUs) / 1000 / windowMs) * 100,
    elu: active + idle > 0 ? active / (active + idle) : Number.NaN,
    sessionRuns: id === undefined ? 0 : (b.sessionRuns[id] ?? 0) - (a.sessionRuns[id] ?? 0),
  };
}
