import ort from "onnxruntime-node";
import { machineBusyMs } from "./onnx-machine.js";
import type { ThroughputRun } from "./onnx-report.js";

/** What Inferno passes to InferenceSession.create (see OnnxRuntime.load), so both sides run the same graph the same way. */
export const sessionOptions = (threads: number): ort.InferenceSession.SessionOptions => ({
  executionProviders: ["cpu"],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
});

export interface LoopResult {
  /** Session runs that completed inside the window. */
  runs: number;
  windowMs: number;
  latenciesMs: number[];
  cpuMs: number;
  /** CPU time all processes on the machine used over the window (null off Linux). */
  machineBusyMs: number | null;
}

/** onnxruntime-node driven directly on this thread: the ceiling Inferno is measured against. */
export class RawSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly input: string,
    private readonly output: string,
  ) {}

  static async open(file: string, input: string, output: string, threads: number): Promise<RawSession> {
    return new RawSession(await ort.InferenceSession.create(file, sessionOptions(threads)), input, output);
  }

  /** One run on a fresh tensor over `data` (what a caller of session.run does per request); the output's values. */
  async run(data: Float32Array, dims: readonly number[]): Promise<Float32Array> {
    const out = await this.session.run({ [this.input]: new ort.Tensor("float32", data, dims) });
    return out[this.output]!.data as Float32Array;
  }

  /** Milliseconds of one run, tensor creation included. */
  async time(data: Float32Array, dims: readonly number[]): Promise<number> {
    const started = performance.now();
    await this.run(data, dims);
    return performance.now() - started;
  }

  /** Runs back to back (one at a time: one session) for warm-up, then counts the runs of the window. */
  async loop(data: Float32Array, dims: readonly number[], warmupMs: number, durationMs: number): Promise<LoopResult> {
    const warmEnd = performance.now() + warmupMs;
    while (performance.now() < warmEnd) await this.run(data, dims);
    const latenciesMs: number[] = [];
    const cpu = process.cpuUsage();
    const busy = machineBusyMs();
    const start = performance.now();
    const end = start + durationMs;
    let now = start;
    while (now < end) {
      const t = await this.time(data, dims);
      now = performance.now();
      latenciesMs.push(t);
    }
    const used = process.cpuUsage(cpu);
    const busyNow = machineBusyMs();
    return {
      runs: latenciesMs.length,
      windowMs: now - start,
      latenciesMs,
      cpuMs: (used.user + used.system) / 1000,
      machineBusyMs: busy === null || busyNow === null ? null : busyNow - busy,
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** A back-to-back raw loop as a throughput run: the raw side's row of every ONNX throughput table. */
export async function rawThroughput(raw: RawSession, data: Float32Array, dims: readonly number[], warmupMs: number, durationMs: number): Promise<ThroughputRun> {
  const r = await raw.loop(data, dims, warmupMs, durationMs);
  return {
    perSecond: r.runs / (r.windowMs / 1000),
    latenciesMs: r.latenciesMs,
    serverCpuPct: (r.cpuMs / r.windowMs) * 100,
    clientCpuPct: null,
    otherCpuPct: r.machineBusyMs === null ? null : ((r.machineBusyMs - r.cpuMs) / r.windowMs) * 100,
    serverElu: null,
    requestsPerRun: null,
    errors: 0,
    firstError: undefined,
  };
}
