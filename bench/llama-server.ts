// llama.cpp's own server as a bench peer: started on a loopback port with the same model, threads,
// slots, context per slot and batch size as the other sides, its log in a file, its RSS read from /proc.
import { spawn } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { EngineSettings } from "./peer-engines.js";

/** The settings every side of the peer bench gets alike (context per slot: the server gets parallel × it), and where its log goes. */
export interface LlamaServerOptions extends EngineSettings {
  bin: string;
  logFile: string;
}

/**
 * The command line: the settings the other sides get, and llama-server's defaults for everything else
 * (continuous batching, prompt cache, flash attention auto, as node-llama-cpp's default). The KV cache is
 * per slot, not unified (the default when -np is given), as node-llama-cpp gives each sequence its own.
 */
export function llamaServerArgs(opts: Omit<LlamaServerOptions, "bin" | "logFile">, port: number): string[] {
  return [
    "--model", opts.modelPath,
    "--threads", String(opts.threads),
    "--threads-batch", String(opts.batchThreads),
    "--parallel", String(opts.parallel),
    "--ctx-size", String(opts.parallel * opts.contextSize),
    "--batch-size", String(opts.batchSize),
    "--ubatch-size", String(opts.batchSize),
    "--no-webui",
    "--host", "127.0.0.1",
    "--port", String(port),
  ];
}

export interface LlamaServerProcess {
  url: string;
  pid: number;
  args: string[];
  /** VmRSS from /proc/PID/status, in bytes. */
  rss(): number;
  /** CPU time used so far, in ms. */
  cpuMs(): number;
  /** Whether no slot is processing (`GET /slots`): what the bench waits for after abandoning requests. */
  idle(): Promise<boolean>;
  close(): Promise<void>;
}

/** A free loopback port (released again: llama-server binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

export function readVmRss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  if (!line) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(line[1]) * 1024;
}

/** CPU time (user + system, all threads) of a process so far, in ms, from /proc/PID/stat (USER_HZ 100). */
export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const logTail = (file: string): string => {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "";
  }
};

/** Starts llama-server and waits until `GET /health` answers 200 (the model is loaded and warmed up). */
export async function startLlamaServer(opts: LlamaServerOptions, timeoutMs = 120_000): Promise<LlamaServerProcess> {
  const port = await freePort();
  const args = llamaServerArgs(opts, port);
  const log = openSync(opts.logFile, "w");
  const child = spawn(opts.bin, args, { stdio: ["ignore", log, log] });
  closeSync(log);
  let exited: string | undefined;
  child.on("exit", (code, signal) => (exited = `llama-server exited (${signal ?? `code ${code}`})`));
  child.on("error", (err) => (exited = `llama-server did not start: ${err.message}`));
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`${exited}; the end of its log (${opts.logFile}):\n${logTail(opts.logFile)}`);
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`llama-server did not become healthy in ${timeoutMs / 1000} s; its log: ${opts.logFile}`);
    }
    const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(100);
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    args,
    rss: () => readVmRss(pid),
    cpuMs: () => readCpuMs(pid),
    idle: async () => {
      const slots = (await (await fetch(`${url}/slots`)).json()) as Array<{ is_processing: boolean }>;
      return slots.every((s) => !s.is_processing);
    },
    close: async () => {
      if (exited) return;
      const gone = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}
