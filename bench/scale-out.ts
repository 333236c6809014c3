/**
 * Issue #18's bench. (a) Aggregate tokens/s of 3 replicas behind nginx (deploy/nginx.conf, rendered for
 * loopback) against one replica with the same CPU threads in all, the same total sequences and the same
 * closed-loop clients; (b) the latency Redis-backed auth and rate limits add to a request (auth-latency.ts).
 * Replicas are `inferno serve` processes sharing a real redis-server (--redis-url), as deployed.
 * Run: `npm run bench:scale-out` (`-- --quick` for about a minute), or `node dist/bench/scale-out.js --help`.
 */
import http from "node:http";
import { mkdir, mkdtemp, realpath, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { nginxBinary, startNginx, type RunningNginx } from "../test/helpers/nginx.js";
import { redisAvailable, startRedis, type TestRedis } from "../test/helpers/redis.js";
import { repoRoot } from "./args.js";
import { authLatency, formatLatency, type LatencyResult } from "./auth-latency.js";
import { closedLoop } from "./closed-loop.js";
import { machineBusyMs } from "./onnx-machine.js";
import { peerBenchModel } from "./peer-model.js";
import { startReplica, type ReplicaProcess } from "./replica-process.js";
import { streamInference, type StreamRequest } from "./sse-client.js";

const usage = `usage: node dist/bench/scale-out.js [options]
  --quick              about a minute: 1 round, 3 s windows, 300 latency requests per side and round
  --only LIST          throughput,latency (default: both)
  --model PATH         GGUF for the throughput part (default: the 85M random-weight bench model, bench/peer-model.ts)
  --threads-one N      llama.cpp threads (and batch threads) of the single replica (default 2)
  --threads-each N     llama.cpp threads (and batch threads) of each of the 3 replicas (default 1)
  --sequences N        parallel sequences of each of the 3 replicas; the single one gets 3 × N (default 2)
  --clients N          closed-loop streaming clients (default 3 × 2 × sequences: every sequence busy, one waiting)
  --max-tokens N       tokens per request (default 128)
  --window S           measured seconds per side and round (default 8; quick 3)
  --rounds N           rounds, sides in turn, reported as the median (default 3; quick 1)
  --requests N         latency requests per side and round (default 3000; quick 300)
  --json PATH          also write the results as JSON`;

interface Options {
  parts: Set<string>;
  model: string | undefined;
  threadsOne: number;
  threadsEach: number;
  sequences: number;
  clients: number;
  maxTokens: number;
  windowMs: number;
  rounds: number;
  requests: number;
  json: string | undefined;
}

function parse(argv: string[]): Options | "help" {
  const str = { type: "string" } as const;
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean" }, help: { type: "boolean", short: "h" }, only: str, model: str, "threads-one": str, "threads-each": str,
      sequences: str, clients: str, "max-tokens": str, window: str, rounds: str, requests: str, json: str,
    },
  });
  if (v.help) return "help";
  const quick = v.quick === true;
  const int = (name: "threads-one" | "threads-each" | "sequences" | "clients" | "max-tokens" | "window" | "rounds" | "requests", fallback: number) => {
    const raw = v[name];
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
    return n;
  };
  const sequences = int("sequences", 2);
  return {
    parts: new Set((v.only ?? "throughput,latency").split(",")),
    model: v.model,
    threadsOne: int("threads-one", 2),
    threadsEach: int("threads-each", 1),
    sequences,
    clients: int("clients", 3 * 2 * sequences),
    maxTokens: int("max-tokens", 128),
    windowMs: int("window", quick ? 3 : 8) * 1000,
    rounds: int("rounds", quick ? 1 : 3),
    requests: int("requests", quick ? 300 : 3000),
    json: v.json,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

interface ThroughputSide {
  name: string;
  url: string;
  rates: number[];
  errors: string[];
}

async function throughput(o: Options, model: string, redis: TestRedis | undefined): Promise<ThroughputSide[] | string> {
  if (!nginxBinary()) return "no nginx installed (Debian package nginx-light): the throughput part was skipped";
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-bench-scale-"));
  const modelsDir = path.join(tmp, "models");
  await mkdir(modelsDir);
  const real = await realpath(model);
  const modelId = path.basename(real, ".gguf");
  await symlink(real, path.join(modelsDir, `${modelId}.gguf`));
  const common = (id: string, threads: number, parallel: number) => [
    "--models-dir", modelsDir, "--model-root", path.dirname(real), "--data-dir", path.join(tmp, `data-${id}`),
    "--demo-models", "false", "--probe-models", "false", "--keep-alive=-1", "--context-size", "1024", "--batch-size", "512",
    "--threads", String(threads), "--batch-threads", String(threads), "--parallel", String(parallel), "--replica-id", id,
    ...(redis ? ["--redis-url", redis.url, "--shared-data-dir", path.join(tmp, "shared")] : []),
  ];
  const servers: ReplicaProcess[] = [];
  const proxies: RunningNginx[] = [];
  try {
    const one = await startReplica(common("one", o.threadsOne, 3 * o.sequences));
    servers.push(one);
    const three = await Promise.all(["r1", "r2", "r3"].map((id) => startReplica(common(id, o.threadsEach, o.sequences))));
    servers.push(...three);
    // The gRPC upstreams are never used here; nginx needs some.
    const oneProxy = await startNginx({ http: [one.address], grpc: [one.address] });
    const threeProxy = await startNginx({ http: three.map((r) => r.address), grpc: three.map((r) => r.address) });
    proxies.push(oneProxy, threeProxy);
    const req: StreamRequest = { model: modelId, prompt: "Once upon a time", maxTokens: o.maxTokens, ignoreEos: true };
    const warm = new http.Agent({ keepAlive: true });
    await Promise.all(servers.map((s) => streamInference(warm, s.url, { ...req, maxTokens: 8 })));
    warm.destroy();
    const sides: ThroughputSide[] = [
      { name: `1 replica, direct (threads ${o.threadsOne}, ${3 * o.sequences} sequences)`, url: one.url, rates: [], errors: [] },
      { name: `1 replica behind nginx (threads ${o.threadsOne}, ${3 * o.sequences} sequences)`, url: oneProxy.url, rates: [], errors: [] },
      { name: `3 replicas behind nginx (threads ${o.threadsEach} each, ${o.sequences} sequences each)`, url: threeProxy.url, rates: [], errors: [] },
    ];
    for (let round = 0; round < o.rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients });
        const result = await closedLoop(o.clients, o.windowMs, (_client, signal, onToken) => streamInference(agent, side.url, req, { signal, onToken }));
        agent.destroy();
        side.rates.push(result.rate);
        side.errors.push(...result.errors);
        await new Promise((r) => setTimeout(r, 300)); // abandoned streams end before the next side
      }
    }
    return sides;
  } finally {
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.close()));
  }
}

function formatThroughput(o: Options, model: string, sides: ThroughputSide[]): string {
  const lines = [
    `model ${model}${o.model ? "" : " (random weights, issue #13's 85M shape: speed only, the text is noise)"}`,
    `${o.clients} closed-loop streaming clients, ${o.maxTokens} tokens per request (ignore_eos), ${o.windowMs / 1000} s windows, ${o.rounds} round(s)`,
    `the same ${3 * o.sequences} sequences in all; llama.cpp threads: ${o.threadsOne} in the single replica, ${o.threadsEach} × 3 in the replicas`,
    "",
    "| side | tokens/s (median) | runs | errors |",
    "|---|---|---|---|",
  ];
  for (const s of sides) lines.push(`| ${s.name} | ${median(s.rates).toFixed(1)} | ${s.rates.map((r) => r.toFixed(0)).join(", ")} | ${s.errors.length} |`);
  const [direct, proxied, three] = sides.map((s) => median(s.rates));
  lines.push("", `3 replicas / 1 replica behind nginx: ${(three! / proxied!).toFixed(2)}×; nginx's own cost on one replica: ${(proxied! / direct!).toFixed(2)}× of direct`);
  const errors = sides.flatMap((s) => s.errors);
  if (errors.length > 0) lines.push(`first error: ${errors[0]}`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o === "help") return console.log(usage);
  const cores = os.availableParallelism();
  const busy = machineBusyMs();
  console.log(`# scale-out bench: ${os.cpus()[0]?.model ?? "cpu"}, ${cores} cores, load average ${os.loadavg()[0]!.toFixed(2)}${busy === null ? "" : `, ${busy} ms busy`}, Node ${process.versions.node}`);
  if (os.loadavg()[0]! > cores / 2) {
    console.log(
      `WARNING: load average above ${cores / 2} on ${cores} cores. llama.cpp's threads wait for each other at every op, so a server`,
      "with more threads than idle cores slows down far more than one with a single thread: rerun on a quiet machine.",
    );
  }
  const redis = redisAvailable().skip ? undefined : await startRedis({ fsync: "everysec" });
  if (!redis) console.log("no redis-server installed (Debian package redis-server): replicas run without --redis-url");
  else console.log("redis-server: AOF with appendfsync everysec, as deploy/ runs it");
  const report: { throughput?: ThroughputSide[]; latency?: LatencyResult } = {};
  try {
    if (o.parts.has("throughput")) {
      const model = o.model ? path.resolve(o.model) : await peerBenchModel(repoRoot);
      console.log("\n## (a) aggregate tokens/s: 3 replicas behind nginx against 1\n");
      const result = await throughput(o, model, redis);
      if (typeof result === "string") console.log(result);
      else {
        report.throughput = result;
        console.log(formatThroughput(o, model, result));
      }
    }
    if (o.parts.has("latency")) {
      console.log("\n## (b) added latency of Redis-backed auth and rate limits\n");
      report.latency = await authLatency({ redis, requests: o.requests, rounds: o.rounds, warmup: 200 });
      console.log(formatLatency(report.latency));
    }
  } finally {
    await redis?.close();
  }
  if (o.json) await writeFile(o.json, JSON.stringify(report, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
