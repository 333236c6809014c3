// One llama.cpp llama-server child process per loaded model, listening on a Unix socket in a private
// temporary folder (0700), the way the backends in ../shared/spec 004 run. Its log goes to Inferno's log
// at debug, and its last lines into the error when it fails to start or dies.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../core/logger.js";
import { InfernoError } from "../../errors/catalogue.js";

export interface LlamaServerLaunch {
  bin: string;
  modelPath: string;
  threads: number;
  batchThreads: number;
  parallel: number;
  /** Tokens per slot (llama-server gets parallel × this). */
  contextSize: number;
  batchSize: number;
  /** Layers on the GPU; 0 on a CPU-only machine. */
  gpuLayers: "auto" | "max" | number;
  log: Logger;
  /** Aborts the start (the child is killed). */
  signal?: AbortSignal;
  /** How long the model may take to load (default 10 minutes). */
  startTimeoutMs?: number;
}

/** Lines of the child's output kept for error messages. */
const TAIL_LINES = 20;
/** Linux's prctl(PR_SET_PDEATHSIG) through util-linux: the child dies with this process, even on SIGKILL. */
const SETPRIV = "/usr/bin/setpriv";

/** The command line: Inferno's settings, llama-server's defaults for the rest (continuous batching, flash attention auto). */
export function llamaServerArgs(opts: Omit<LlamaServerLaunch, "bin" | "log" | "signal">, socketPath: string): string[] {
  const ngl = opts.gpuLayers === "max" ? "all" : String(opts.gpuLayers);
  return [
    "--model", opts.modelPath,
    "--threads", String(opts.threads),
    "--threads-batch", String(opts.batchThreads),
    "--parallel", String(opts.parallel),
    "--ctx-size", String(opts.parallel * opts.contextSize),
    "--batch-size", String(opts.batchSize),
    "--ubatch-size", String(opts.batchSize),
    "--n-gpu-layers", ngl,
    // Its host-memory prompt cache would hold up to 8 GiB beyond what the registry accounts for.
    "--cache-ram", "0",
    "--no-webui",
    "--host", socketPath,
  ];
}

/** A running llama-server: HTTP over its socket, its exit, its log tail. */
export class LlamaServerProcess {
  private exitReason: string | undefined;
  private readonly tail: string[] = [];
  /**
   * A connection per request: llama-server closes a streamed response's connection at its end, and a
   * kept-alive socket it has closed meanwhile fails the next request ("socket hang up"). Connecting to a
   * Unix socket costs tens of microseconds.
   */
  private readonly agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

  private constructor(
    private readonly child: ChildProcess,
    readonly socketPath: string,
    private readonly dir: string,
    log: Logger,
  ) {
    const onOutput = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line.trim()) continue;
        this.tail.push(line);
        if (this.tail.length > TAIL_LINES) this.tail.shift();
        log.debug({ llamaServer: child.pid }, line);
      }
    };
    child.stdout?.on("data", onOutput);
    child.stderr?.on("data", onOutput);
    child.on("exit", (code, signal) => {
      this.exitReason = signal ? `killed by ${signal}` : `exit code ${code}`;
      this.agent.destroy();
      rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    });
    child.on("error", (err) => (this.exitReason ??= `could not start: ${err.message}`));
  }

  /** Starts llama-server and waits until `GET /health` answers 200 (model loaded, warmed up). */
  static async start(opts: LlamaServerLaunch): Promise<LlamaServerProcess> {
    if (!existsSync(opts.bin)) {
      throw new InfernoError("MODEL_LOAD_FAILED", `llama-server not found at ${opts.bin}: run npm run build:llama-server, or set llamaServer`);
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), "inferno-llama-server-"));
    const socketPath = path.join(dir, "llama.sock");
    const args = llamaServerArgs(opts, socketPath);
    const [cmd, argv] = existsSync(SETPRIV) ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", opts.bin, ...args]] : [opts.bin, args];
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const proc = new LlamaServerProcess(child, socketPath, dir, opts.log);
    opts.log.debug({ pid: child.pid, args }, "llama-server starting");
    try {
      await proc.waitHealthy(opts.startTimeoutMs ?? 600_000, opts.signal);
    } catch (err) {
      await proc.close();
      throw err;
    }
    return proc;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitReason === undefined;
  }

  /** Why it ended, with the end of its log; undefined while it runs. */
  get exitMessage(): string | undefined {
    return this.exitReason === undefined ? undefined : `llama-server ${this.exitReason}; its last lines: ${this.tail.slice(-5).join(" | ")}`;
  }

  private async waitHealthy(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (!this.alive) throw new InfernoError("MODEL_LOAD_FAILED", `could not load model: ${this.exitMessage}`);
      if (signal?.aborted) throw new InfernoError("MODEL_LOAD_FAILED", "load cancelled");
      if (performance.now() > deadline) throw new InfernoError("MODEL_LOAD_FAILED", `llama-server did not become ready in ${timeoutMs / 1000} s`);
      const status = await this.get("/health").then((r) => r.status, () => 0);
      if (status === 200) return;
      await sleep(50);
    }
  }

  /** A GET whose body is read whole. */
  async get(route: string): Promise<{ status: number; body: string }> {
    const res = await this.request("GET", route);
    let body = "";
    for await (const chunk of res) body += chunk;
    return { status: res.statusCode ?? 0, body };
  }

  /** An HTTP request over the socket; resolves with the response once its head arrives. */
  request(method: string, route: string, body?: unknown, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path: route,
          headers: payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
          ...(signal ? { signal } : {}),
        },
        (res) => {
          res.setEncoding("utf8");
          resolve(res);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  /**
   * True once the child has exited, false if it still runs after `ms`. A killed child's socket closes
   * before Node reports its exit, so a failed request waits a moment to tell a dead child from a bad answer.
   */
  exited(ms: number): Promise<boolean> {
    if (!this.alive) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.child.off("exit", done);
        resolve(false);
      }, ms);
      this.child.once("exit", done);
    });
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. */
  async close(): Promise<void> {
    if (this.alive && this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    this.agent.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}
