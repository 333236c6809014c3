import { Buffer } from "node:buffer";
import { fork, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/** One closed-loop load: `clients` clients, each sending the same request back to back. */
export interface LoadSpec {
  url: string;
  /** JSON text of the request body (a string, so that it crosses the IPC channel cheaply). */
  body: string;
  clients: number;
  /** Load before the window opens, so that queues and batches are at steady state when counting starts. */
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  /** Requests that completed inside the window. */
  completed: number;
  windowMs: number;
  /** Client-side latency of each request that completed inside the window, from send to the last body byte. */
  latenciesMs: number[];
  errors: number;
  firstError: string | undefined;
  /** CPU time of the process the clients ran in, over the window (user + system, all threads). */
  cpuMs: number;
}

/** CPU time of this process (all threads) at `startMs` and at `endMs` of performance.now(), taken by timers. */
export async function cpuOverWindow(startMs: number, endMs: number): Promise<number> {
  await sleep(Math.max(0, startMs - performance.now()));
  const before = process.cpuUsage();
  await sleep(Math.max(0, endMs - performance.now()));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** Runs the load and counts only what completes between warm-up's end and the window's end (no ramp, no drain). */
export async function generateLoad(spec: LoadSpec): Promise<LoadResult> {
  const body = Buffer.from(spec.body);
  const start = performance.now();
  const windowStart = start + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const fail = (message: string) => {
    errors++;
    firstError ??= message;
  };
  const client = async () => {
    while (performance.now() < windowEnd && errors < 100) {
      const sent = performance.now();
      try {
        const res = await fetch(spec.url, { method: "POST", headers: { "content-type": "application/json" }, body });
        const text = await res.text();
        const done = performance.now();
        if (!res.ok) fail(`HTTP ${res.status}: ${text.slice(0, 200)}`);
        else if (done >= windowStart && done <= windowEnd) latenciesMs.push(done - sent);
      } catch (err) {
        fail((err as Error).message);
      }
    }
  };
  const [cpuMs] = await Promise.all([cpuOverWindow(windowStart, windowEnd), ...Array.from({ length: spec.clients }, client)]);
  return { completed: latenciesMs.length, windowMs: spec.durationMs, latenciesMs, errors, firstError, cpuMs };
}

/** Where the load runs: a forked child process, so that the server's process does only server work, or this process. */
export interface LoadClient {
  readonly where: "child" | "inprocess";
  run(spec: LoadSpec): Promise<LoadResult>;
  close(): Promise<void>;
}

export function inProcessLoadClient(): LoadClient {
  return { where: "inprocess", run: generateLoad, close: async () => {} };
}

/** A child process running `onnx-load-child.js`: one message in (a LoadSpec), one message back (a LoadResult). */
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
    run: (spec) =>
      new Promise<LoadResult>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`load client exited (code ${code})`));
        child.once("exit", onExit);
        child.once("message", (msg) => {
          child.off("exit", onExit);
          resolve(msg as LoadResult);
        });
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
