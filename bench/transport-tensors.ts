// The tensor parts of the transport bench: mnist-8 latency at one client and throughput at many; mobilenet
// throughput with the server's default dynamic batching against raw session.run at batch 1 and batch 16.
import { connect, grpcChannels, type GrpcClient } from "./grpc-bench-client.js";
import { MNIST, MOBILENET, sampleInput, type BenchModel } from "./onnx-inputs.js";
import { machineBusyMs } from "./onnx-machine.js";
import type { RawSession } from "./onnx-raw.js";
import type { ThroughputRun } from "./onnx-report.js";
import { rotate } from "./rotate.js";
import { maxAbsDiff, quantile } from "./stats.js";
import { grpcSide, httpSide, rawSide, type TensorSide } from "./tensor-sides.js";
import type { TensorSideName } from "./tensor-wire.js";
import type { TransportBenchOptions } from "./transport-args.js";
import type { TransportServer } from "./transport-server.js";

/** Untimed requests per side before latency is timed (JIT, connections, onnxruntime's first runs). */
const LATENCY_WARMUP = 20;
/** The untimed load of each side before the throughput rounds. */
const PRIME_MS = 1000;
/** Lets the side that just ran drain its sockets before the next starts. */
const SETTLE_MS = 100;

export interface LatencyResult {
  model: string;
  requests: number;
  rounds: number;
  /** p50 and p99 of each round, per side. */
  sides: Array<{ side: TensorSideName; p50Ms: number[]; p99Ms: number[] }>;
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
  const result: LatencyResult["sides"] = sides.map((s) => ({ side: s.name, p50Ms: [], p99Ms: [] }));
  for (let round = 0; round < opts.runs; round++) {
    // Request by request, the sides in turn, so that drift hits them all alike.
    const samples = await rotate(opts.latencyRequests, sides.map((s) => () => s.time()));
    samples.forEach((ms, i) => {
      result[i]!.p50Ms.push(quantile(ms, 0.5));
      result[i]!.p99Ms.push(quantile(ms, 0.99));
    });
  }
  const used = process.cpuUsage(started.cpu);
  const busy = machineBusyMs();
  const serversUs = (await Promise.all(servers.map((s) => s.sample()))).reduce((sum, b, i) => sum + b.cpuUs - started.servers[i]!.cpuUs, 0);
  const ownMs = (used.user + used.system + serversUs) / 1000;
  const otherCpuPct = started.busy === null || busy === null ? null : ((busy - started.busy - ownMs) / (performance.now() - started.at)) * 100;
  return { model: model.name, requests: opts.latencyRequests, rounds: opts.runs, sides: result, maxAbsDiff: {}, otherCpuPct };
}

async function throughput(model: BenchModel, sides: TensorSide[], opts: TransportBenchOptions, batching: string): Promise<ThroughputResult> {
  // One untimed window per side first: a side's first window under load otherwise runs partly unoptimized (JIT) code.
  for (const s of sides) await s.throughput(opts.clients, PRIME_MS / 2, PRIME_MS / 2);
  const runs = await rotate(opts.runs, sides.map((s) => () => s.throughput(opts.clients, opts.warmupS * 1000, opts.durationS * 1000)), SETTLE_MS);
  return { model: model.name, clients: opts.clients, batching, sides: sides.map((s, i) => ({ side: s.name, rows: s.rows, runs: runs[i]! })), maxAbsDiff: {} };
}

const describeBatching = (o: Record<string, unknown> | undefined, model: BenchModel) =>
  !model.batchable ? "n/a (batch dim fixed at 1)" : `server default: max ${o?.max_batch_size} rows, delay ${o?.max_queue_delay_us} µs`;

/** mnist-8: every transport, and the bare floors, at one client (latency) and at --clients (throughput). */
export async function mnistPart(server: TransportServer, floor: TransportServer, raw: RawSession, opts: TransportBenchOptions): Promise<{ latency: LatencyResult; throughput: ThroughputResult }> {
  const input = sampleInput(MNIST);
  const id = MNIST.name;
  const channels = grpcChannels(server.grpcAddress, opts.grpcChannels);
  const floorChannels = grpcChannels(floor.grpcAddress, opts.grpcChannels);
  await connect([...channels, ...floorChannels]);
  const sides = [
    rawSide(raw, MNIST, input),
    grpcSide(server, channels, MNIST, id, input),
    httpSide(server, MNIST, id, input, "kserve-binary"),
    httpSide(server, MNIST, id, input, "kserve-json"),
    httpSide(server, MNIST, id, input, "octet"),
    grpcSide(floor, floorChannels, MNIST, id, input, "grpc-floor"),
    httpSide(floor, MNIST, id, input, "kserve-binary", "http-floor"),
  ];
  try {
    const diff = await check(sides.filter((s) => !s.name.endsWith("floor")), await raw.run(input, MNIST.dims));
    console.error("mnist-8: latency...");
    const lat = { ...(await latency(MNIST, sides, [server, floor], opts)), maxAbsDiff: diff };
    console.error(`mnist-8: throughput, ${opts.clients} clients...`);
    const thr = { ...(await throughput(MNIST, sides, opts, describeBatching(server.options[id], MNIST))), maxAbsDiff: diff };
    return { latency: lat, throughput: thr };
  } finally {
    closeAll(sides, [...channels, ...floorChannels]);
  }
}

/** mobilenet: REST binary and gRPC at --clients with the server's default batching, against raw at batch 1 and at the batcher's size, and the floors. */
export async function mobilenetPart(server: TransportServer, floor: TransportServer, raw: RawSession, opts: TransportBenchOptions): Promise<ThroughputResult> {
  const input = sampleInput(MOBILENET);
  const id = MOBILENET.name;
  const maxBatch = Number(server.options[id]?.max_batch_size ?? 16);
  const channels = grpcChannels(server.grpcAddress, opts.grpcChannels);
  const floorChannels = grpcChannels(floor.grpcAddress, opts.grpcChannels);
  await connect([...channels, ...floorChannels]);
  const sides = [
    rawSide(raw, MOBILENET, input),
    rawSide(raw, MOBILENET, sampleInput(MOBILENET, maxBatch), maxBatch),
    httpSide(server, MOBILENET, id, input, "kserve-binary"),
    grpcSide(server, channels, MOBILENET, id, input),
    grpcSide(floor, floorChannels, MOBILENET, id, input, "grpc-floor"),
    httpSide(floor, MOBILENET, id, input, "kserve-binary", "http-floor"),
  ];
  try {
    const diff = await check(sides.filter((s) => s.rows === 1 && !s.name.endsWith("floor")), await raw.run(input, MOBILENET.dims));
    console.error(`mobilenet: throughput, ${opts.clients} clients...`);
    return { ...(await throughput(MOBILENET, sides, opts, describeBatching(server.options[id], MOBILENET))), maxAbsDiff: diff };
  } finally {
    closeAll(sides, [...channels, ...floorChannels]);
  }
}

function closeAll(sides: TensorSide[], channels: GrpcClient[]): void {
  for (const s of sides) s.close();
  for (const c of channels) c.close();
}
