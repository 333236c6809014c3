// The tensor parts of the transport bench: mnist-8 latency at one client and throughput at many; mobilenet
// throughput with the server's default dynamic batching against raw session.run at batch 1 and batch 16.
// Every transport: gRPC, REST (KServe JSON and binary, native octet-stream) and IPC, and their bare floors.
import { connect, grpcChannels } from "./grpc-bench-client.js";
import { grpcioSides } from "./grpcio-side.js";
import { ipcClients, RawIpcClient } from "./ipc-bench-client.js";
import { MNIST, MOBILENET, sampleInput, type BenchModel } from "./onnx-inputs.js";
import { machineBusyMs } from "./onnx-machine.js";
import type { RawSession } from "./onnx-raw.js";
import type { ThroughputRun } from "./onnx-report.js";
import { rotate } from "./rotate.js";
import { maxAbsDiff, quantile } from "./stats.js";
import { grpcSide, httpSide, ipcRawSide, ipcSide, rawSide, type TensorSide } from "./tensor-sides.js";
import type { TensorSideName } from "./tensor-wire.js";
import type { TransportBenchOptions } from "./transport-args.js";
import type { TransportServer } from "./transport-server.js";

/** Untimed requests per side before latency is timed (JIT, connections, onnxruntime's first runs). */
const LATENCY_WARMUP = 20;
/** The untimed load of each side before the throughput rounds (a quick run: 0.4 s). */
const PRIME_MS = 1000;
/** Lets the side that just ran drain its sockets before the next starts. */
const SETTLE_MS = 100;

export interface LatencyResult {
  model: string;
  requests: number;
  rounds: number;
  /**
   * p50 and p99 of each round, per side: the sides in turn request by request (each request finds its server idle
   * since the other sides' requests, as a caller with sporadic requests does), and back to back (`b2b`: a side's
   * requests one after another, its server and client awake, as a busy caller's).
   */
  sides: Array<{ side: TensorSideName; p50Ms: number[]; p99Ms: number[]; b2bP50Ms: number[]; b2bP99Ms: number[] }>;
  /** Largest |side − raw| of the output on the same input: 0 when the same numbers came back. */
  maxAbsDiff: Partial<Record<TensorSideName, number>>;
  /** CPU other processes used while the latency rounds ran, % of one core (null off Linux). */
  otherCpuPct: number | null;
}

export interface ThroughputSide {
  side: TensorSideName;
  /** Images per request or per raw session.run. */
  rows: number;
  runs: ThroughputRun[];
}

export interface ThroughputResult {
  model: string;
  clients: number;
  batching: string;
  sides: ThroughputSide[];
  maxAbsDiff: Partial<Record<TensorSideName, number>>;
}

/** Each transport's output against raw's on the same input. */
async function check(sides: TensorSide[], expected: ArrayLike<number>): Promise<Partial<Record<TensorSideName, number>>> {
  const out: Partial<Record<TensorSideName, number>> = {};
  for (const s of sides) if (s.name !== "raw") out[s.name] = maxAbsDiff(await s.output(), expected);
  return out;
}

async function latency(model: BenchModel, sides: TensorSide[], servers: TransportServer[], opts: TransportBenchOptions): Promise<LatencyResult> {
  for (let i = 0; i < LATENCY_WARMUP; i++) for (const s of sides) await s.time();
  const started = { at: performance.now(), cpu: process.cpuUsage(), busy: machineBusyMs(), servers: await Promise.all(servers.map((s) => s.sample())) };
  const result: LatencyResult["sides"] = sides.map((s) => ({ side: s.name, p50Ms: [], p99Ms: [], b2bP50Ms: [], b2bP99Ms: [] }));
  for (let round = 0; round < opts.runs; round++) {
    // Request by request, the sides in turn, so that drift hits them all alike.
    const samples = await rotate(opts.latencyRequests, sides.map((s) => () => s.time()));
    samples.forEach((ms, i) => {
      result[i]!.p50Ms.push(quantile(ms, 0.5));
      result[i]!.p99Ms.push(quantile(ms, 0.99));
    });
  }
  const block = async (s: TensorSide) => {
    const ms: number[] = [];
    for (let i = 0; i < opts.latencyRequests; i++) ms.push(await s.time());
    return ms;
  };
  const blocks = await rotate(opts.runs, sides.map((s) => () => block(s)));
  blocks.forEach((rounds, i) => {
    result[i]!.b2bP50Ms.push(...rounds.map((ms) => quantile(ms, 0.5)));
    result[i]!.b2bP99Ms.push(...rounds.map((ms) => quantile(ms, 0.99)));
  });
  const used = process.cpuUsage(started.cpu);
  const busy = machineBusyMs();
  const serversUs = (await Promise.all(servers.map((s) => s.sample()))).reduce((sum, b, i) => sum + b.cpuUs - started.servers[i]!.cpuUs, 0);
  const ownMs = (used.user + used.system + serversUs) / 1000;
  const otherCpuPct = started.busy === null || busy === null ? null : ((busy - started.busy - ownMs) / (performance.now() - started.at)) * 100;
  return { model: model.name, requests: opts.latencyRequests, rounds: opts.runs, sides: result, maxAbsDiff: {}, otherCpuPct };
}

const isFloor = (s: TensorSide) => s.name.endsWith("floor");

/**
 * Raw and Inferno's sides take turns round by round; the floors do the same after them. With the floors in the same
 * rotation, every mobilenet side of Inferno ran 25–35% slower from the second round on (the server's event loop
 * 0.44 → 0.73 busy for REST binary), and stayed there, while six rounds without floors stayed level: the floors'
 * load (600 KB requests at up to 4,500/s through another process) changes something on this VM that we did not pin
 * down, and the floors are references, not sides to compare in turn with raw.
 */
async function throughput(model: BenchModel, sides: TensorSide[], opts: TransportBenchOptions, batching: string): Promise<ThroughputResult> {
  const primeMs = opts.quick ? 400 : PRIME_MS;
  const runs = new Map<TensorSide, ThroughputRun[]>();
  for (const group of [sides.filter((s) => !isFloor(s)), sides.filter(isFloor)]) {
    // One untimed window per side first: a side's first window under load otherwise runs partly unoptimized (JIT) code.
    for (const s of group) await s.throughput(opts.clients, primeMs / 2, primeMs / 2);
    const rounds = await rotate(opts.runs, group.map((s) => () => s.throughput(opts.clients, opts.warmupS * 1000, opts.durationS * 1000)), SETTLE_MS);
    group.forEach((s, i) => runs.set(s, rounds[i]!));
  }
  return { model: model.name, clients: opts.clients, batching, sides: sides.map((s) => ({ side: s.name, rows: s.rows, runs: runs.get(s)! })), maxAbsDiff: {} };
}

const describeBatching = (o: Record<string, unknown> | undefined, model: BenchModel) =>
  !model.batchable ? "n/a (batch dim fixed at 1)" : `server default: max ${o?.max_batch_size} rows, delay ${o?.max_queue_delay_us} µs`;

/** The clients of one server and of its floor, opened for a part and closed together. */
async function openClients(server: TransportServer, floor: TransportServer, opts: TransportBenchOptions, ipcConnections: number) {
  const grpc = opts.ipcOnly ? [] : grpcChannels(server.grpcAddress, opts.grpcChannels);
  const grpcFloor = opts.ipcOnly ? [] : grpcChannels(floor.grpcAddress, opts.grpcChannels);
  await connect([...grpc, ...grpcFloor]);
  const ipc = await ipcClients(server.ipcSocket, ipcConnections);
  const ipcFloor = await ipcClients(floor.ipcSocket, 1);
  const ipcRaw = await RawIpcClient.open(server.ipcSocket);
  const ipcRawFloor = await RawIpcClient.open(floor.ipcSocket);
  return {
    grpc, grpcFloor, ipc, ipcFloor, ipcRaw, ipcRawFloor,
    close: () => {
      for (const c of [...grpc, ...grpcFloor, ...ipc, ...ipcFloor, ipcRaw, ipcRawFloor]) c.close();
    },
  };
}

/** With --only ipc, only raw and the IPC sides run; with --sides, only raw and those. */
const wanted = (name: TensorSideName, opts: TransportBenchOptions) =>
  name === "raw" || ((!opts.ipcOnly || name.startsWith("ipc")) && (!opts.sides || opts.sides.has(name)));
const selected = (sides: TensorSide[], opts: TransportBenchOptions) => sides.filter((s) => wanted(s.name, opts));

/** mnist-8: every transport, and the bare floors, at one client (latency) and at --clients (throughput). */
export async function mnistPart(server: TransportServer, floor: TransportServer, raw: RawSession, opts: TransportBenchOptions): Promise<{ latency: LatencyResult; throughput: ThroughputResult }> {
  const input = sampleInput(MNIST);
  const id = MNIST.name;
  const c = await openClients(server, floor, opts, opts.clients);
  const [grpcio, grpcioFloor] = await grpcioPair(server, floor, MNIST, id, input, opts);
  const sides = selected([
    rawSide(raw, MNIST, input),
    grpcSide(server, c.grpc, MNIST, id, input),
    ...grpcio,
    httpSide(server, MNIST, id, input, "kserve-binary"),
    httpSide(server, MNIST, id, input, "kserve-json"),
    httpSide(server, MNIST, id, input, "octet"),
    // One connection shared by every concurrent request, as an app keeps one client; and one per client.
    ipcSide(server, c.ipc.slice(0, 1), MNIST, id, input),
    ipcSide(server, c.ipc, MNIST, id, input, "ipc-conns"),
    ipcRawSide(server, c.ipcRaw, MNIST, id, input),
    grpcSide(floor, c.grpcFloor, MNIST, id, input, "grpc-floor"),
    ...grpcioFloor,
    httpSide(floor, MNIST, id, input, "kserve-binary", "http-floor"),
    ipcSide(floor, c.ipcFloor, MNIST, id, input, "ipc-floor"),
    ipcRawSide(floor, c.ipcRawFloor, MNIST, id, input, "ipc-raw-floor"),
  ], opts);
  try {
    const diff = await check(sides.filter((s) => !isFloor(s)), await raw.run(input, MNIST.dims));
    console.error("mnist-8: latency...");
    // At one client, a connection per client is the one-connection side again.
    const lat = { ...(await latency(MNIST, sides.filter((s) => s.name !== "ipc-conns"), [server, floor], opts)), maxAbsDiff: diff };
    console.error(`mnist-8: throughput, ${opts.clients} clients...`);
    const thr = { ...(await throughput(MNIST, sides, opts, describeBatching(server.options[id], MNIST))), maxAbsDiff: diff };
    return { latency: lat, throughput: thr };
  } finally {
    closeAll(sides, c);
  }
}

/** mobilenet: REST binary, gRPC and IPC at --clients with the server's default batching, against raw at batch 1 and at the batcher's size, and the floors. */
export async function mobilenetPart(server: TransportServer, floor: TransportServer, raw: RawSession, opts: TransportBenchOptions): Promise<ThroughputResult> {
  const input = sampleInput(MOBILENET);
  const id = MOBILENET.name;
  const maxBatch = Number(server.options[id]?.max_batch_size ?? 16);
  const c = await openClients(server, floor, opts, 1);
  const [grpcio, grpcioFloor] = await grpcioPair(server, floor, MOBILENET, id, input, opts);
  const sides = selected([
    rawSide(raw, MOBILENET, input),
    rawSide(raw, MOBILENET, sampleInput(MOBILENET, maxBatch), maxBatch),
    httpSide(server, MOBILENET, id, input, "kserve-binary"),
    grpcSide(server, c.grpc, MOBILENET, id, input),
    ...grpcio,
    ipcSide(server, c.ipc, MOBILENET, id, input),
    grpcSide(floor, c.grpcFloor, MOBILENET, id, input, "grpc-floor"),
    ...grpcioFloor,
    httpSide(floor, MOBILENET, id, input, "kserve-binary", "http-floor"),
    ipcSide(floor, c.ipcFloor, MOBILENET, id, input, "ipc-floor"),
  ], opts);
  try {
    const diff = await check(sides.filter((s) => s.rows === 1 && !isFloor(s)), await raw.run(input, MOBILENET.dims));
    console.error(`mobilenet: throughput, ${opts.clients} clients...`);
    return { ...(await throughput(MOBILENET, sides, opts, describeBatching(server.options[id], MOBILENET))), maxAbsDiff: diff };
  } finally {
    closeAll(sides, c);
  }
}

/** The grpcio sides of Inferno and of the floor, each as a list of zero or one. */
async function grpcioPair(server: TransportServer, floor: TransportServer, model: BenchModel, id: string, data: Float32Array, opts: TransportBenchOptions) {
  const sides = await grpcioSides(server, floor, model, id, data, (name) => wanted(name, opts));
  return [sides.filter((s) => s.name === "grpcio"), sides.filter((s) => s.name === "grpcio-floor")] as const;
}

function closeAll(sides: TensorSide[], clients: { close(): void }): void {
  for (const s of sides) s.close();
  clients.close();
}
