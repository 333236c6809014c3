// The sides of the tensor comparison: raw session.run in this process, and each transport to the server child.
// Every side answers the same three questions: its output (checked against raw), one timed request, a load window.
import { modelInfer, type GrpcClient } from "./grpc-bench-client.js";
import type { InfernoClient, RawIpcClient } from "./ipc-bench-client.js";
import { httpPost, keepAliveAgent } from "./onnx-http.js";
import type { BenchModel } from "./onnx-inputs.js";
import { windowedLoad, type LoadResult, type WindowMark } from "./onnx-load.js";
import { machineBusyMs } from "./onnx-machine.js";
import { rawThroughput, type RawSession } from "./onnx-raw.js";
import type { ThroughputRun } from "./onnx-report.js";
import { grpcOutput, grpcTensorRequest, httpWire, ipcFrame, ipcFrameOutput, ipcInputs, ipcOutput, type HttpForm, type TensorSideName } from "./tensor-wire.js";
import { serverDelta, type ServerSample, type TransportServer } from "./transport-server.js";

export interface TensorSide {
  name: TensorSideName;
  /** Images per request (transports) or per session.run (raw). */
  rows: number;
  /** The output of one request, to check against raw's. */
  output(): Promise<ArrayLike<number>>;
  /** Milliseconds of one request, one at a time. */
  time(): Promise<number>;
  /** `clients` closed-loop clients for a warm-up, then a counted window (raw: one back-to-back loop). */
  throughput(clients: number, warmupMs: number, durationMs: number): Promise<ThroughputRun>;
  close(): void;
}

/** raw session.run on `rows` images at a time: one session runs one call at a time, so its load is one loop whatever the clients. */
export function rawSide(raw: RawSession, model: BenchModel, data: Float32Array, rows = 1): TensorSide {
  const dims = [rows, ...model.dims.slice(1)];
  return {
    name: "raw",
    rows,
    output: () => raw.run(data, dims),
    time: () => raw.time(data, dims),
    throughput: (_clients, warmupMs, durationMs) => rawThroughput(raw, data, dims, warmupMs, durationMs),
    close: () => {},
  };
}

/**
 * A load window on the server, sampled at the window's open and close: the server's CPU, ELU and session runs, and
 * the rest of the machine's CPU. `runLoad` runs the clients and calls `onMark` as the window opens and closes.
 */
export async function serverLoad(server: TransportServer, id: string, durationMs: number, runLoad: (onMark: (mark: WindowMark) => void) => Promise<LoadResult>): Promise<ThroughputRun> {
  let open: { sample: Promise<ServerSample>; at: number; busy: number | null } | undefined;
  let close: { sample: Promise<ServerSample>; at: number; busy: number | null } | undefined;
  const onMark = (mark: WindowMark) => {
    const now = { sample: server.sample(), at: performance.now(), busy: machineBusyMs() };
    if (mark === "open") open = now;
    else close = now;
  };
  const load = await runLoad(onMark);
  if (!open || !close) throw new Error("the load never closed its window");
  const windowMs = close.at - open.at;
  const srv = serverDelta(await open.sample, await close.sample, windowMs, id);
  const busyMs = open.busy === null || close.busy === null ? null : close.busy - open.busy;
  return {
    perSecond: load.completed / (durationMs / 1000),
    latenciesMs: load.latenciesMs,
    serverCpuPct: srv.cpuPct,
    clientCpuPct: (load.cpuMs / load.cpuWindowMs) * 100,
    otherCpuPct: busyMs === null ? null : ((busyMs - srv.cpuMs - load.cpuMs) / windowMs) * 100,
    serverElu: srv.elu,
    requestsPerRun: srv.sessionRuns > 0 ? load.completed / srv.sessionRuns : null,
    errors: load.errors,
    firstError: load.firstError,
  };
}

/** A REST form with node:http keep-alive agents: one connection for single requests, one per client under load. */
export function httpSide(server: TransportServer, model: BenchModel, id: string, data: Float32Array, form: HttpForm, name: TensorSideName = form): TensorSide {
  const wire = httpWire(model, id, data, form);
  const url = server.url + wire.path;
  const single = keepAliveAgent(1);
  const post = async (agent = single) => {
    const answer = await httpPost(agent, url, wire.body, wire.headers);
    if (answer.status !== 200) throw new Error(`${form}: HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
    return answer;
  };
  return {
    name,
    rows: 1,
    output: async () => wire.output(await post()),
    time: async () => {
      const started = performance.now();
      await post();
      return performance.now() - started;
    },
    throughput: async (clients, warmupMs, durationMs) => {
      const agent = keepAliveAgent(clients);
      try {
        return await serverLoad(server, id, durationMs, (onMark) => windowedLoad({ clients, warmupMs, durationMs }, async () => void (await post(agent)), onMark));
      } finally {
        agent.destroy();
      }
    },
    close: () => single.destroy(),
  };
}

/** A transport whose client sends a request and awaits its answer: client i's request is `call(i)`; single requests are client 0's. */
function unarySide(server: TransportServer, id: string, name: TensorSideName, call: (client: number) => Promise<unknown>, output: () => Promise<ArrayLike<number>>): TensorSide {
  return {
    name,
    rows: 1,
    output,
    time: async () => {
      const started = performance.now();
      await call(0);
      return performance.now() - started;
    },
    throughput: (clients, warmupMs, durationMs) =>
      serverLoad(server, id, durationMs, (onMark) => windowedLoad({ clients, warmupMs, durationMs }, async (client) => void (await call(client)), onMark)),
    close: () => {},
  };
}

/** gRPC ModelInfer over `channels` (client i uses channel i mod n). The channels belong to the caller. */
export function grpcSide(server: TransportServer, channels: GrpcClient[], model: BenchModel, id: string, data: Float32Array, name: TensorSideName = "grpc"): TensorSide {
  const req = grpcTensorRequest(model, id, data);
  const call = (client: number) => modelInfer(channels[client % channels.length]!, req);
  return unarySide(server, id, name, call, async () => grpcOutput(model, await call(0)));
}

/** IPC infer with the shipped client over `clients` (client i uses connection i mod n). The clients belong to the caller. */
export function ipcSide(server: TransportServer, clients: InfernoClient[], model: BenchModel, id: string, data: Float32Array, name: TensorSideName = "ipc"): TensorSide {
  const inputs = ipcInputs(model, data);
  const call = (client: number) => clients[client % clients.length]!.infer(id, inputs);
  return unarySide(server, id, name, call, async () => ipcOutput(model, await call(0)));
}

/** IPC infer with the raw-frame client: every client on its one connection. The client belongs to the caller. */
export function ipcRawSide(server: TransportServer, client: RawIpcClient, model: BenchModel, id: string, data: Float32Array, name: TensorSideName = "ipc-raw"): TensorSide {
  const request = ipcFrame(model, id, data);
  const call = () => client.send(request);
  return unarySide(server, id, name, call, async () => ipcFrameOutput(model, await call()));
}
