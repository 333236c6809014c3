import { spawn, type ChildProcess } from "node:child_process";
import { cliPath } from "./paths.js";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The parent's env without any INFERNO_* variable (nor the test runner's marker), plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inherited = ([k]: [string, unknown]) => !k.startsWith("INFERNO_") && k !== "NODE_TEST_CONTEXT";
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
