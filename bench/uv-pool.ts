import { spawnSync } from "node:child_process";
import { llamaProcessEnv } from "../src/runtimes/llama/threadpool.js";

/**
 * Runs this script again, with Inferno's libuv pool size, when the environment set none: the size is fixed
 * before a script's first line runs (see src/main.cts), and a bench that drives node-llama-cpp in its own
 * process must run it the way `inferno serve` does. Returns true when it did (the exit code is the rerun's).
 */
export function rerunWithLlamaPool(): boolean {
  if (process.env.UV_THREADPOOL_SIZE !== undefined) return false;
  const rerun = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env: llamaProcessEnv() });
  process.exitCode = rerun.status ?? 1;
  return true;
}
