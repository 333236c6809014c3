// The added latency of Redis-backed auth and rate limits (issue #18's goal: under 0.3 ms at p50): one
// replica, a cheap authenticated route (GET /models, no model in the models dir), one request at a time on
// a kept-alive connection, on three servers that differ only in their shared state.
import { spawnSync } from "node:child_process";
import http from "node:http";
import { mkdir, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { TestRedis } from "../test/helpers/redis.js";
import { createApiKey, startReplica, type ReplicaProcess } from "./replica-process.js";
import { quantile } from "./stats.js";

export interface LatencySide {
  name: string;
  p50Ms: number;
  p99Ms: number;
  samples: number;
}

export interface LatencyResult {
  sides: LatencySide[];
  /** Commands Redis processed per measured request of the --redis-url side: about 0 when this build keeps auth and limits out of it. */
  redisCommandsPerRequest: number | undefined;
}

/** Commands the Redis has processed so far (INFO stats); 0 without one. */
function redisCommands(redis: TestRedis | undefined): number {
  if (!redis) return 0;
  const out = spawnSync("redis-cli", ["-p", String(redis.port), "info", "stats"], { encoding: "utf8" });
  return Number(/total_commands_processed:(\d+)/.exec(out.stdout)?.[1] ?? 0);
}

/** One GET, timed from the request to the end of the response. */
function timedGet(agent: http.Agent, url: string, headers: Record<string, string>): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers }, (res) => {
        res.resume();
        res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`GET ${url} answered ${res.statusCode}`))));
      })
      .on("error", reject);
  });
}

interface Side {
  name: string;
  server: ReplicaProcess;
  headers: Record<string, string>;
  agent: http.Agent;
  samples: number[];
}

/**
 * Three servers: no auth; auth and rate limits with local state (SQLite keys, in-process counters); the same
 * with --redis-url. Limits are set high enough never to refuse, so every request pays for the counting.
 * Sides take turns in rounds, so load from elsewhere on the machine falls on all of them alike.
 */
export async function authLatency(opts: { redis: TestRedis | undefined; requests: number; rounds: number; warmup: number }): Promise<LatencyResult> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-bench-auth-"));
  const modelsDir = path.join(tmp, "models");
  await mkdir(modelsDir);
  const limits = ["--auth", "--requests-per-minute", "1000000", "--requests-per-hour", "100000000", "--concurrent-requests", "100"];
  const specs: Array<{ name: string; args: string[]; redis: boolean; auth: boolean }> = [
    { name: "no auth, no limits", args: [], redis: false, auth: false },
    { name: "auth + limits, local (SQLite, memory)", args: limits, redis: false, auth: true },
    ...(opts.redis ? [{ name: "auth + limits, --redis-url", args: [...limits, "--redis-url", opts.redis.url], redis: true, auth: true }] : []),
  ];
  const sides: Side[] = [];
  let redisCommandsPerRequest: number | undefined;
  try {
    for (const [i, spec] of specs.entries()) {
      const dataDir = path.join(tmp, `data-${i}`);
      const key = spec.auth ? createApiKey(dataDir, spec.redis ? opts.redis!.url : undefined) : undefined;
      const server = await startReplica(["--models-dir", modelsDir, "--data-dir", dataDir, "--demo-models", "false", ...spec.args]);
      sides.push({
        name: spec.name,
        server,
        headers: key ? { authorization: `Bearer ${key}` } : {},
        agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
        samples: [],
      });
    }
    for (const side of sides) for (let i = 0; i < opts.warmup; i++) await timedGet(side.agent, `${side.server.url}/models`, side.headers);
    const commandsBefore = redisCommands(opts.redis);
    for (let round = 0; round < opts.rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
        for (let i = 0; i < opts.requests; i++) side.samples.push(await timedGet(side.agent, `${side.server.url}/models`, side.headers));
      }
    }
    const commands = redisCommands(opts.redis) - commandsBefore - 1; // less the INFO call itself
    redisCommandsPerRequest = opts.redis ? commands / (opts.requests * opts.rounds) : undefined;
  } finally {
    for (const side of sides) side.agent.destroy();
    await Promise.all(sides.map((s) => s.server.close()));
  }
  return {
    sides: sides.map((s) => ({ name: s.name, p50Ms: quantile(s.samples, 0.5), p99Ms: quantile(s.samples, 0.99), samples: s.samples.length })),
    redisCommandsPerRequest,
  };
}

export function formatLatency(result: LatencyResult): string {
  const lines = ["GET /models, one request at a time, kept-alive connection (ms):", "", "| server | p50 | p99 | requests |", "|---|---|---|---|"];
  for (const s of result.sides) lines.push(`| ${s.name} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.samples} |`);
  const [none, local, redis] = result.sides;
  lines.push("");
  if (none && local) lines.push(`auth + limits, local, add ${(local.p50Ms - none.p50Ms).toFixed(3)} ms at p50`);
  if (local && redis) {
    const added = redis.p50Ms - local.p50Ms;
    lines.push(`--redis-url adds ${added.toFixed(3)} ms at p50 over local state (goal < 0.300): ${added < 0.3 ? "met" : "NOT met"}`);
    const perRequest = result.redisCommandsPerRequest ?? 0;
    if (perRequest < 0.5) {
      lines.push(
        `NOTE: Redis processed ${perRequest.toFixed(2)} commands per request: this build keeps keys and limits in SQLite and`,
        "memory even with --redis-url (issue #18's auth and rate-limit parts not merged yet), so both sides measure local auth + limits.",
      );
    } else lines.push(`Redis processed ${perRequest.toFixed(2)} commands per request of the --redis-url side (auth and limits went through it).`);
  } else if (!redis) lines.push("no redis-server installed (Debian package redis-server): the --redis-url side was skipped");
  return lines.join("\n");
}
