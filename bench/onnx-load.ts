import { Buffer } from "node:buffer";
import { fork, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { httpPost, keepAliveAgent } from "./onnx-http.js";

/** One closed-loop load: `clients` clients (one keep-alive connection each), each sending the same request back to back. */
export interface LoadSpec {
  url: string;
  /** JSON text of the request body (a string, so that it crosses the IPC channel cheaply). */
  body: string;
  clients: number;
  /** Load before the window opens, so that queues and batches are at steady state when counting starts. */
  warmupMs: number;
  durationMs: number;
}

/** The window opening and closing, reported as they happen so that the server side can sample over the same span. */
export type WindowMark = "open" | "close";

export interface LoadResult {
  /** Requests that completed inside the window. */
  completed: number;
  windowMs: number;
  /** Client-side latency of each request that completed inside the window, from send to the last body byte. */
  latenciesMs: number[];
  errors: number;
  firstError: string | undefined;
  /** CPU time of the process the clients ran in over `cpuWindowMs`, the window as its timers saw it (user + system, all threads). */
  cpuMs: number;
  cpuWindowMs: number;
}

/** CPU time of this process (all threads) between `startMs` and `endMs` of performance.now(); marks each end. */
async function cpuOverWindow(startMs: number, endMs: number, onMark: (mark: WindowMark) => void): Promise<{ cpuMs: number; ms: number }> {
  await sleep(Math.max(0, startMs - performance.now()));
  const before = process.cpuUsage();
  const opened = performance.now();
  onMark("open");
  await sleep(Math.max(0, endMs - performance.now()));
  onMark("close");
  const used = process.cpuUsage(before);
  return { cpuMs: (used.user + used.system) / 1000, ms: performance.now() - opened };
}

/** The closed loop of a load, whatever carries its requests: `send` makes client `client`'s next request and rejects when it failed. */
export async function windowedLoad(
  spec: Pick<LoadSpec, "clients" | "warmupMs" | "durationMs">,
  send: (client: number) => Promise<void>,
  onMark: (mark: WindowMark) => void = () => {},
): Promise<LoadResult> {
  const start = performance.now();
  const windowStart = start + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const client = async (i: number) => {
    while (performance.now() < windowEnd && errors < 100) {
      const sent = performance.now();
      try {
        await send(i);
        const done = performance.now();
        if (done >= windowStart && done <= windowEnd) latenciesMs.push(done - sent);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  const [cpu] = await Promise.all([cpuOverWindow(windowStart, windowEnd, onMark), ...Array.from({ length: spec.clients }, (_, i) => client(i))]);
  return { completed: latenciesMs.length, windowMs: spec.durationMs, latenciesMs, errors, firstError, cpuMs: cpu.cpuMs, cpuWindowMs: cpu.ms };
}

/** Runs the load and counts only what completes between warm-up's end and the window's end (no ramp, no drain). */
export async function generateLoad(spec: LoadSpec, onMark: (mark: WindowMark) => void = () => {}): Promise<LoadResult> {
  const body = Buffer.from(spec.body);
  const agent = keepAliveAgent(spec.clients);
  try {
    return await windowedLoad(spec, async () => {
      const res = await httpPost(agent, spec.url, body);
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    }, onMark);
  } finally {
    agent.destroy();
  }
}

/** Where the load runs: a forked child process, so that the server's process does only server work, or this process. */
export interface LoadClient {
  readonly where: "child" | "inprocess";
  run(spec: LoadSpec, onMark: (mark: WindowMark) => void): Promise<LoadResult>;
  close(): Promise<void>;
}

export function inProcessLoadClient(): LoadClient {
  return { where: "inprocess", run: generateLoad, close: async () => {} };
}

/** A child process running `onnx-load-child.js`: a LoadSpec in; the window's marks, then the LoadResult, back. */
export async function childLoadClient(): Promise<LoadClient> {
  const child: ChildProcess = fork(new URL("./onnx-load-child.js", import.meta.url), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`load client exited early (code ${code})`)));
  });
  child.removeAllListeners("exit");
  child.removeAllListeners("error");
  return {
    where: "child",
    run: (spec, onMark) =>
      new Promise<LoadResult>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`load client exited (code ${code})`));
        const onMessage = (msg: { mark: WindowMark } | LoadResult) => {
          if ("mark" in msg) return onMark(msg.mark);
          child.off("exit", onExit);
          child.off("message", onMessage);
          resolve(msg);
        };
        child.once("exit", onExit);
        child.on("message", onMessage);
        child.send(spec);
      }),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.disconnect();
      await exited;
    },
  };
}
