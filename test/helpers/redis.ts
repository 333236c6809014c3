// A real redis-server for the scale-out tests: Debian's binary on a free loopback port, its data in a
// temp dir (AOF on, so a restart keeps what was acknowledged), stopped and restarted on demand.
// Tests skip without a redis-server on PATH unless INFERNO_REQUIRE_REDIS=1 (CI installs it).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** `test()` options that skip a Redis test when no redis-server is installed (fail instead in CI). */
export function redisAvailable(): { skip: string | false } {
  const found = spawnSync("redis-server", ["--version"], { encoding: "utf8" }).status === 0;
  if (found) return { skip: false };
  if (process.env.INFERNO_REQUIRE_REDIS === "1") throw new Error("redis-server is required (INFERNO_REQUIRE_REDIS=1) but not on PATH");
  return { skip: "redis-server not installed (Debian package redis-server)" };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface TestRedis {
  port: number;
  url: string;
  /** SIGKILLs the server (as a crash would). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data dir (AOF replayed). */
  start(): Promise<void>;
  /** Stops it and removes its data dir. */
  close(): Promise<void>;
}

/**
 * Starts a redis-server on a free loopback port with AOF on; resolves once it answers PING. Tests use
 * `appendfsync always` (a kill loses nothing); the bench uses `everysec`, the deployed setting
 * (deploy/docker-compose.yml, deploy/k8s), since `always` makes every write wait for an fsync.
 */
export async function startRedis(opts: { fsync?: "always" | "everysec" } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "inferno-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    child = spawn("redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", opts.fsync ?? "always",
      "--save", "", "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    const proc = child;
    exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    for (let i = 0; i < 200; i++) {
      const ping = spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" });
      if (ping.stdout.trim() === "PONG") return;
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
      await sleep(25);
    }
    throw new Error(`redis-server did not answer on ${port}: ${stderr}`);
  };
  const kill = async () => {
    child?.kill("SIGKILL");
    await exited;
    child = undefined;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    close: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
