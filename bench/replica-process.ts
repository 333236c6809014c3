// `inferno serve` as a deployment runs it: the built CLI in a process of its own (so its libuv pool, its
// threads and its event loop are its own), on a free loopback port, no inherited INFERNO_* variables.
import { spawn, spawnSync } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { childEnv } from "../test/helpers/cli.js";
import { freePort } from "../test/helpers/nginx.js";
import { repoRoot } from "./args.js";

const cliPath = path.join(repoRoot, "dist/src/main.cjs");

export interface ReplicaProcess {
  url: string;
  /** host:port, as an nginx upstream names it. */
  address: string;
  /** What it wrote to stderr (warnings and errors: it logs at warn). */
  log(): string;
  close(): Promise<void>;
}

const healthy = (url: string) =>
  new Promise<boolean>((resolve) => {
    http.get(`${url}/health`, (res) => (res.resume(), resolve(res.statusCode === 200))).on("error", () => resolve(false));
  });

/** Starts `inferno serve ARGS` with HTTP only, logging at warn; resolves once GET /health answers 200. */
export async function startReplica(args: string[]): Promise<ReplicaProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [cliPath, "serve", "--host", "127.0.0.1", "--port", String(port), "--grpc-enabled", "false", "--log-level", "warn", ...args], {
    env: childEnv({ INFERNO_LOG_PRETTY: "false" }),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (log += s));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`inferno serve ${args.join(" ")} exited (${child.exitCode}): ${log}`);
    if (await healthy(url)) return { url, address: `127.0.0.1:${port}`, log: () => log, close };
    await sleep(50);
  }
  await close();
  throw new Error(`inferno serve did not answer /health within 20 s: ${log}`);
}

/** `inferno security api-key create` against a data dir (and a Redis, when given): the new key. */
export function createApiKey(dataDir: string, redisUrl?: string): string {
  const args = ["security", "api-key", "create", "--user", "bench", "--name", "bench", "--role", "admin", "--json", "--data-dir", dataDir];
  if (redisUrl) args.push("--redis-url", redisUrl);
  const out = spawnSync(process.execPath, [cliPath, ...args], { env: childEnv(), encoding: "utf8" });
  if (out.status !== 0) throw new Error(`inferno ${args.join(" ")} failed: ${out.stderr}`);
  return (JSON.parse(out.stdout.trim().split("\n").pop()!) as { key: string }).key;
}
