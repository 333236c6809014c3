import { fork, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Logger } from "../../core/logger.js";
import { InfernoError } from "../../errors/catalogue.js";
import { redactPaths } from "../../errors/redact-paths.js";
import type { ProbeReply, ProbeRequest } from "./probe-protocol.js";
import { VerdictStore, type Verdict } from "./verdict-store.js";

export interface GgufProbeOptions {
  /** Where verdicts are kept across restarts (`model-checks.json`); memory only without one. */
  dataDir?: string | undefined;
  log: Logger;
  /** Part of every verdict's key, so a new llama.cpp checks every file again. */
  runtimeVersion: string;
  /** The child exits after this long without work (ms). */
  idleMs?: number;
  /** A probe that takes longer than this is ended and the load refused (ms; counted from the probe's start). */
  timeoutMs?: number;
}

/** A file's identity: device, inode, size and mtime; a file replaced or rewritten gets a new one. */
export async function fileIdentity(filePath: string): Promise<string> {
  const st = await fs.stat(filePath);
  return `${st.dev}:${st.ino}:${st.size}:${Math.round(st.mtimeMs)}`;
}

/** Signals that mean llama.cpp gave up on the file's content: GGML_ASSERT aborts, bad reads, traps. */
const FILE_FAULT_SIGNALS = new Set(["SIGABRT", "SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGTRAP"]);
const PROBE_CONTEXT = 256;
const STDERR_KEEP = 16 * 1024;

/**
 * Opens each new or changed GGUF file once in a child process before the server loads it in-process.
 * llama.cpp has hundreds of asserts on model content that abort the process; a file that trips one
 * kills the child, and becomes a 422 INVALID_MODEL_FILE for every request that names it instead of a
 * dead server. Verdicts are remembered by file identity (device, inode, size, mtime) and llama.cpp
 * version, so each file is probed once. Probes run one at a time, so a crash always belongs to its file.
 */
export class GgufProbe {
  private child: ChildProcess | undefined;
  /** Started when a probe's child dies, so that the next file finds llama.cpp already loaded (it takes ~1 s). */
  private spare: ChildProcess | undefined;
  /** The child running the current probe, and what it wrote to stderr since it began. */
  private probing: ChildProcess | undefined;
  private stderr = "";
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly inFlight = new Map<string, Promise<Verdict>>();
  private readonly store: VerdictStore;
  private readonly idleMs: number;
  private readonly timeoutMs: number;
  /** Files opened in a child so far, and how many of them made llama.cpp abort. */
  readonly stats = { probes: 0, aborts: 0 };

  constructor(private readonly opts: GgufProbeOptions) {
    this.store = new VerdictStore(opts.dataDir ? path.join(opts.dataDir, "model-checks.json") : undefined);
    this.idleMs = opts.idleMs ?? 15_000;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  /** Resolves when llama.cpp can open the file; throws INVALID_MODEL_FILE (with llama.cpp's reason) when it cannot. */
  async check(filePath: string): Promise<void> {
    const key = await this.keyOf(filePath);
    let verdict = await this.store.get(key);
    if (!verdict) {
      let pending = this.inFlight.get(key);
      if (!pending) {
        pending = this.serialized(() => this.probe(filePath)).finally(() => this.inFlight.delete(key));
        this.inFlight.set(key, pending);
      }
      verdict = await pending;
      await this.store.set(key, verdict);
    }
    if (!verdict.ok) {
      throw new InfernoError("INVALID_MODEL_FILE", `llama.cpp cannot load this file: ${verdict.message}`, { reason: "runtime_rejected", runtime_message: verdict.message });
    }
  }

  private async keyOf(filePath: string): Promise<string> {
    return `${await fileIdentity(filePath)}:${this.opts.runtimeVersion}`;
  }

  /** Ends the children; a later check starts new ones. */
  dispose(): void {
    clearTimeout(this.idleTimer);
    for (const child of [this.child, this.spare]) child?.kill("SIGKILL");
    this.child = this.spare = undefined;
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private spawn(): ChildProcess {
    const child = fork(new URL("./probe-child.js", import.meta.url), [], {
      execArgv: [],
      // ggml's abort attaches gdb for a backtrace when one is installed: seconds per crash, for nothing here.
      env: { ...process.env, GGML_NO_BACKTRACE: "1" },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "json",
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      if (child === this.probing) this.stderr = (this.stderr + chunk).slice(-STDERR_KEEP);
    });
    // A send to a child that just died emits "error"; its "close" settles the probe, so only log it.
    child.on("error", (err) => this.opts.log.debug({ err }, "model probe process error"));
    child.on("exit", () => {
      if (this.child === child) this.child = undefined;
      if (this.spare === child) this.spare = undefined;
    });
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    return child;
  }

  /** The child for the next probe: the running one, or the spare started when the last one died. */
  private take(): ChildProcess {
    if (!this.child) {
      this.child = this.spare ?? this.spawn();
      this.spare = undefined;
    }
    return this.child;
  }

  /** One probe in the (possibly new) child: its reply, or its death, is the verdict. */
  private probe(filePath: string): Promise<Verdict> {
    clearTimeout(this.idleTimer);
    const child = this.take();
    this.stats.probes++;
    this.probing = child;
    this.stderr = "";
    const request: ProbeRequest = { id: this.nextId++, path: filePath, contextSize: PROBE_CONTEXT };
    const started = performance.now();
    let timedOut = false;
    return new Promise<Verdict>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("close", onExit);
        this.probing = undefined;
        this.idleTimer = setTimeout(() => this.dispose(), this.idleMs).unref();
      };
      const onMessage = (reply: ProbeReply) => {
        if (reply.id !== request.id) return;
        done();
        this.opts.log.debug({ file: path.basename(filePath), ok: reply.ok, probe_ms: Math.round(reply.ms) }, "model file probed");
        if (reply.backend) reject(new InfernoError("MODEL_LOAD_FAILED", `could not start llama.cpp to check the file: ${reply.message ?? ""}`));
        else resolve(reply.ok ? { ok: true } : { ok: false, message: redactPaths(reply.message ?? "load failed") });
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        done();
        const ms = Math.round(performance.now() - started);
        if (timedOut) {
          reject(new InfernoError("TIMEOUT", `checking the model file took longer than ${this.timeoutMs} ms`, { timeout_ms: this.timeoutMs }));
        } else if ((signal && FILE_FAULT_SIGNALS.has(signal)) || (code !== null && code !== 0)) {
          this.stats.aborts++;
          // Files often come in batches (a folder of uploads): the next one should find llama.cpp loaded.
          this.spare ??= this.spawn();
          const message = assertionOf(this.stderr) ?? `llama.cpp stopped (${signal ?? `exit ${code}`}) while opening the file`;
          this.opts.log.warn({ file: path.basename(filePath), signal, code, probe_ms: ms, reason: message }, "model file aborted llama.cpp in the probe process");
          resolve({ ok: false, message });
        } else {
          reject(new InfernoError("MODEL_LOAD_FAILED", `the model check was stopped (${signal ?? "exit"}) before it finished; try again`, { signal }));
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
        this.opts.log.warn({ file: path.basename(filePath), timeout_ms: this.timeoutMs }, "model file probe timed out");
      }, this.timeoutMs);
      child.on("message", onMessage);
      // "close", not "exit": it comes after stderr has been read to its end, the assert line included.
      child.on("close", onExit);
      child.send(request);
    });
  }
}

/** The assert llama.cpp printed before aborting, without the build machine's source paths. */
function assertionOf(stderr: string): string | undefined {
  const lines = stderr.split("\n").filter((l) => /GGML_ASSERT|error:|terminate called|what\(\)/.test(l));
  const last = lines.at(-1);
  return last === undefined ? undefined : redactPaths(last);
}
