import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { cliPath } from "./paths.js";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The parent's env without any INFERNO_* variable, the test runner's marker or a libuv pool size, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inherited = ([k]: [string, unknown]) => !k.startsWith("INFERNO_") && k !== "NODE_TEST_CONTEXT" && k !== "UV_THREADPOOL_SIZE";
  return { ...Object.fromEntries(Object.entries(process.env).filter(inherited)), ...extra };
}

/** Starts the built CLI as a child process (stdin piped only when `stdin` is given). */
export function spawnCli(args: string[], opts: { cwd: string; env?: Record<string, string>; stdin?: string }): ChildProcess {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdio: [opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  return child;
}

/** Runs the CLI to completion (killed after 20 s, so a hang fails the test instead of the run). */
export function runCli(args: string[], opts: { cwd: string; env?: Record<string, string>; stdin?: string }): Promise<CliResult> {
  const child = spawnCli(args, opts);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => (stdout += s));
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running `inferno serve` child (see `serveCli`). */
export interface ServedCli {
  child: ChildProcess;
  url: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it logged so far (stdout and stderr). */
  log: () => string;
}

/**
 * `inferno serve --port 0` in a child with no inherited INFERNO_* variables and JSON logs at level info;
 * resolves once it listens.
 */
export async function serveCli(args: string[], env: Record<string, string> = {}): Promise<ServedCli> {
  const child = spawnCli(["serve", "--port", "0", "--grpc-port", "0", "--log-level", "info", ...args], {
    cwd: process.cwd(),
    env: { INFERNO_LOG_PRETTY: "false", ...env },
  });
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (log += s));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 20 s: ${log}`)), 20_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log += `${line}\n`;
      const msg = (() => {
        try {
          return (JSON.parse(line) as { msg?: unknown }).msg;
        } catch {
          return undefined;
        }
      })();
      const m = typeof msg === "string" ? /^Server listening at (http:\/\/\S+)$/.exec(msg) : null;
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exit.then(({ code }) => reject(new Error(`serve exited (${code}) before listening: ${log}`)));
  });
  return { child, url, exit, log: () => log };
}
