import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { parseKeepAlive } from "../core/duration.js";
import { parseBudget, parseVramBudget } from "../registry/memory-budget.js";
import { DEFAULT_HF_ENDPOINT } from "../pull/model-source.js";
import { pooledLlamaAddon } from "../runtimes/llama/threadpool.js";

/**
 * Default llama.cpp threads for one-token batches (a single stream decoding): every core when
 * node-llama-cpp's addon decodes on a persistent thread pool (scripts/build-llama-addon.sh); with the
 * prebuilt addon, which makes its threads anew for every token, one core is left to the JS thread, since
 * there a second thread made one stream slower (README, Threads).
 */
export function defaultThreads(cores = os.availableParallelism(), pooled = pooledLlamaAddon()): number {
  return Math.max(1, pooled ? cores : cores - 1);
}

/**
 * Default llama.cpp threads for batches of more than one token (prompts, several sequences decoding
 * together): every core. The JS thread has little to do while a large batch computes.
 */
export function defaultBatchThreads(cores = os.availableParallelism()): number {
  return Math.max(1, cores);
}

const intFromString = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v), z.number().int().min(min).max(max));

/** A boolean spelled as a word or 0/1 in a flag or env value; anything else is left as it is. */
const boolWord = (v: string): boolean | string => {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  return v;
};

const boolFromString = z.preprocess((v) => (typeof v === "string" ? boolWord(v) : v), z.boolean());

const boolBool = (fallback: boolean) => boolFromString.default(fallback);

/** false, true, a hop count, or a comma list of proxy addresses / CIDR ranges (Fastify's trustProxy forms). */
const trustProxySetting = z.preprocess(
  (v) => {
    if (typeof v !== "string") return v;
    const t = v.trim();
    // Digits are a hop count ("1": the nearest proxy only), not the boolean "1"; 0 trusts nobody.
    if (/^\d+$/.test(t)) return Number(t) === 0 ? false : Number(t);
    const word = boolWord(t);
    return typeof word === "boolean" ? word : t.split(",").map((a) => a.trim()).filter(Boolean);
  },
  z.union([
    z.boolean(),
    z.number().int().min(1).max(32),
    z.array(z.string().regex(/^[0-9A-Fa-f.:]+(\/\d{1,3})?$/, "an IP address or CIDR range")).min(1),
  ]),
);

const listFromString = z.preprocess(
  (v) => (typeof v === "string" ? v.split(path.delimiter).filter(Boolean) : v),
  z.array(z.string().min(1)),
);

export const configSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: intFromString(0, 65535).default(8080),
    /** The gRPC listener (KServe v2 / Triton GRPCInferenceService), on the same host as HTTP. */
    grpcEnabled: boolBool(true),
    /** 8081, KServe's convention; 0 picks a free port. */
    grpcPort: intFromString(0, 65535).default(8081),
    /** Unix domain socket for the IPC protocol (docs/ipc.md); off when unset. */
    ipcSocket: z.string().min(1).max(100).optional(),
    /** File mode of the IPC socket, octal ("0600": only this user may connect). */
    ipcSocketMode: z
      .union([z.number().int(), z.string().regex(/^0?[0-7]{3}$/, "expected an octal file mode such as 0600")])
      .default("0600")
      .transform((v) => (typeof v === "number" ? v : parseInt(v, 8)))
      .refine((v) => v >= 0 && v <= 0o777, "expected a file mode between 0000 and 0777"),
    /** Largest IPC frame; a larger one closes that connection with an error frame. */
    ipcMaxFrameBytes: intFromString(1024, 1 << 30).default(64 * 1024 * 1024),
    /** Requests one IPC connection may have running; the server stops reading it beyond. */
    ipcMaxInFlight: intFromString(1, 100_000).default(64),
    /** MCP for agents on the Streamable HTTP transport at /mcp (README, MCP). */
    mcpEnabled: boolBool(true),
    /** An MCP session with no request for this long is closed and forgotten (its client must initialize again). */
    mcpSessionIdleMs: intFromString(1000, 86_400_000).default(15 * 60 * 1000),
    /** MCP sessions open at once; an initialize beyond is refused with 503. */
    mcpMaxSessions: intFromString(1, 100_000).default(256),
    /** PEM certificate chain and key: HTTPS and gRPC over TLS (both or neither). */
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    /** PEM CA bundle: clients must present a certificate it signed (mTLS), on both listeners. */
    tlsClientCa: z.string().min(1).optional(),
    modelsDir: z.string().min(1).default("./models"),
    dataDir: z.string().min(1).default("./data"),
    /**
     * Serve the demo models shipped in demo/models (source "demo") while the models dir holds no model
     * file and nothing is registered by path; they go at the first scan that finds a model of your own.
     */
    demoModels: boolBool(true),
    /** Extra folders from which models may be registered by path (besides modelsDir). */
    modelRoots: listFromString.default([]),
    /** llama.cpp threads for one-token batches (one stream decoding). */
    threads: intFromString(1, 1024).default(defaultThreads()),
    /** llama.cpp threads for larger batches: prompts and several streams at once (llama.cpp's n_threads_batch). */
    batchThreads: intFromString(1, 1024).default(defaultBatchThreads()),
    /**
     * At load, measure a CPU model whose tokens are fast at fewer threads too, and run it on the fastest
     * count (thread-tuning.ts). Off by default when threads or batchThreads is set.
     */
    tuneThreads: boolFromString.optional(),
    /**
     * Stream tokens of a GGUF generation in groups at most this often (ms) instead of each as it is sampled: the
     * first token goes out at once, the others together once this long has passed since the last group (README,
     * Threads). 0: every token at once. "auto" (the default): 20 ms for a CPU model whose one-stream decode runs on
     * every core, else 0 (streamIntervalFor).
     */
    streamIntervalMs: z.union([z.literal("auto"), intFromString(0, 1000)]).default("auto"),
    gpu: z.enum(["auto", "cpu", "cuda", "vulkan", "metal"]).default("auto"),
    /** What runs GGUF models: node-llama-cpp in this process, or a llama-server child process per model (README, GGUF engines). */
    ggufEngine: z.enum(["node-llama-cpp", "llama-server"]).default("node-llama-cpp"),
    /** The llama-server binary for that engine (default: the one npm run build:llama-server built). */
    llamaServer: z.string().min(1).optional(),
    /** Parallel sequences per loaded GGUF model (requests decoded together in one batch). */
    parallel: intFromString(1, 256).default(4),
    contextSize: intFromString(64, 1 << 20).default(2048),
    /**
     * Requests that may wait for a sequence, per model; one more gets 503 at once. 512, as Ollama queues:
     * a burst of a few hundred streaming clients waits its turn instead of being refused. The waiting
     * requests of all models are also held to QUEUE_RAM_SHARE of the RAM (src/server.ts).
     */
    queueSize: intFromString(0, 100_000).default(512),
    /** How long a request may wait for a sequence before it fails with TIMEOUT (ms). */
    queueTimeoutMs: intFromString(100, 24 * 3600 * 1000).default(120_000),
    batchSize: intFromString(1, 1 << 16).default(512),
    gpuLayers: z.union([z.literal("auto"), z.literal("max"), intFromString(0, 100000)]).default("auto"),
    /** How long an idle model stays loaded: seconds or a duration ("5m", "1h"); negative keeps it forever. */
    keepAlive: z
      .union([z.number(), z.string()])
      .default("5m")
      .refine((v) => parseKeepAlive(v) !== undefined, "expected seconds or a duration such as 5m, 1h30m, -1"),
    /**
     * RAM that loaded models may hold together: "auto" (80% of the memory available at start, cgroup
     * limits included), bytes, a size ("8GiB", "512MB") or a share of total RAM ("75%").
     */
    memoryBudget: z
      .union([z.number(), z.string()])
      .default("auto")
      .refine((v) => parseBudget(v) !== undefined, 'expected "auto", bytes, a size such as 8GiB or 512MB, or a share such as 75%'),
    /** GPU memory that loads may take: "auto" (90% of what is free at each load) or a size; percentages are of total RAM, so not taken. */
    vramBudget: z
      .union([z.number(), z.string()])
      .default("auto")
      .refine((v) => parseVramBudget(v) !== undefined, 'expected "auto", bytes or a size such as 20GiB'),
    /** Models loaded at once; loading one more unloads the least recently used idle one. 0: no limit. */
    maxLoadedModels: intFromString(0, 10_000).default(3),
    /**
     * Open each new or changed GGUF file once in a child process before loading it in-process, so a file
     * that makes llama.cpp abort is refused instead of ending the server.
     */
    probeModels: boolBool(true),
    /** onnxruntime execution provider: cpu (default), cuda, or auto (cuda when it loads, else cpu). */
    onnxProvider: z.enum(["cpu", "cuda", "auto"]).default("cpu"),
    onnxIntraOpThreads: intFromString(1, 1024).default(defaultThreads(os.availableParallelism(), false)),
    onnxInterOpThreads: intFromString(1, 1024).default(1),
    onnxGraphOptimization: z.enum(["disabled", "basic", "extended", "all"]).default("all"),
    /** Rows per merged ONNX run (dynamic batching); 1 turns batching off. */
    onnxMaxBatchSize: intFromString(1, 4096).default(16),
    /** How long a queued ONNX request waits for others to batch with, in microseconds. */
    onnxMaxQueueDelayUs: intFromString(0, 10_000_000).default(0),
    /** Largest tensor a request may send, in elements. */
    maxTensorElements: intFromString(1, 1 << 30).default(1 << 24),
    maxTokensLimit: intFromString(1, 1 << 20).default(4096),
    defaultMaxTokens: intFromString(1, 1 << 20).default(256),
    bodyLimit: intFromString(1024, 1 << 30).default(10 * 1024 * 1024),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    logPretty: boolFromString.optional(),
    /** Require credentials (API key or JWT) on every route but the public ones. */
    auth: boolBool(false),
    /** Allow a non-loopback bind without auth (an explicit operator decision). */
    insecure: boolBool(false),
    /** HMAC secret for JWTs; generated once and kept in the data dir when absent. */
    jwtSecret: z.string().min(32).optional(),
    /** JWT lifetime: seconds or a duration such as 1h. */
    jwtExpiresIn: z
      .union([z.number(), z.string()])
      .default("1h")
      .refine((v) => (parseKeepAlive(v) ?? 0) >= 1000, "expected a positive duration such as 3600, 1h or 30m"),
    /** Origins allowed by CORS; none by default. */
    corsOrigins: z.preprocess((v) => (typeof v === "string" ? v.split(",").map((o) => o.trim()).filter(Boolean) : v), z.array(z.string().url())).default([]),
    /** Serve /metrics without credentials (for a scraper on a trusted network). */
    metricsPublic: boolBool(false),
    /** Rate limits apply per API key, or per IP without one; on by default when auth is on. */
    rateLimit: boolFromString.optional(),
    requestsPerMinute: intFromString(1, 1_000_000).default(60),
    requestsPerHour: intFromString(1, 100_000_000).default(1000),
    tokensPerMinute: intFromString(1, 1_000_000_000).default(10000),
    concurrentRequests: intFromString(1, 100_000).default(10),
    /**
     * With redisUrl: how long a concurrency slot outlives its replica's last refresh (every third of it),
     * so the slots of a replica that died mid-request come free within this.
     */
    concurrencyLeaseMs: intFromString(1000, 600_000).default(15_000),
    /** Per-request time limit in milliseconds (TIMEOUT after it); streams count until their last token. */
    requestTimeoutMs: intFromString(1000, 24 * 3600 * 1000).default(600_000),
    /**
     * On SIGTERM/SIGINT, how long open requests and streams may go on before they are ended with
     * SERVICE_UNAVAILABLE. 25 s: under Kubernetes' default 30 s terminationGracePeriodSeconds, leaving
     * time to end the streams, flush batch state and exit before the SIGKILL.
     */
    shutdownGraceMs: intFromString(0, 3600 * 1000).default(25_000),
    /** Largest request header block in bytes. */
    maxHeaderBytes: intFromString(1024, 1 << 20).default(16 * 1024),
    /** Batch items run at once (each holds one sequence; never the last free one of a model, see src/batch). */
    batchConcurrency: intFromString(1, 256).default(1),
    /** Let webhooks target private, loopback and link-local addresses (off: only public addresses). */
    webhookAllowPrivate: boolBool(false),
    /**
     * Let server-side pulls (POST /models/pull) reach private, loopback and link-local addresses, redirects
     * included (off: only public addresses, as for webhooks). The CLI's `inferno pull` is not affected.
     */
    pullAllowPrivate: boolBool(false),
    /** Where `pull hf:...` downloads from (a Hugging Face mirror, say). */
    hfEndpoint: z.string().url().default(DEFAULT_HF_ENDPOINT),
    /**
     * Shared state for several replicas (keys, users, rate limits, batch jobs, webhooks) in this Redis
     * (`redis://[:password@]host:port[/db]` or `rediss://`); unset: one process, SQLite and memory.
     */
    redisUrl: z.string().regex(/^rediss?:\/\/\S+$/, "a redis:// or rediss:// URL").optional(),
    /** This process's name among replicas: the `replica` label of its metrics and its name in Redis. */
    replicaId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "1-64 letters, digits, '.', '_' or '-'").default(`${os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48)}-${process.pid}`),
    /** With redisUrl: a folder every replica mounts, for uploaded files and batch results (default: dataDir). */
    sharedDataDir: z.string().min(1).optional(),
    /**
     * Which proxies' X-Forwarded-For to believe for the client's address (rate-limit keys, logs): "false"
     * (default: the socket's peer), "true" (any), a hop count, or a comma list of addresses and CIDR ranges
     * (`127.0.0.1,10.0.0.0/8`). Fastify's trustProxy.
     */
    trustProxy: trustProxySetting.default(false),
    /**
     * OpenTelemetry collector to export traces to (OTLP over HTTP/protobuf): a base URL such as
     * http://localhost:4318 (/v1/traces is added) or the full traces URL; unset: no export.
     */
    otlpEndpoint: z.string().url().regex(/^https?:/i, "an http:// or https:// URL").optional(),
    /** The `service.name` of exported spans. */
    otlpServiceName: z.string().min(1).max(256).default("inferno"),
    /** Days the audit log keeps its events (pruned at start and daily); 0 keeps them forever. */
    auditRetentionDays: intFromString(0, 36_500).default(90),
  })
  .strict()
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { message: "tlsCert and tlsKey go together", path: ["tlsCert"] })
  .refine((c) => c.tlsClientCa === undefined || c.tlsCert !== undefined, { message: "tlsClientCa needs tlsCert and tlsKey", path: ["tlsClientCa"] });

export type Config = Readonly<z.infer<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;

/** Env names for each key: INFERNO_ + SCREAMING_SNAKE of the key. */
export const envNameOf = (key: string) => "INFERNO_" + key.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase();

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface ConfigSources {
  /** Values from command-line flags (already camelCased). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file; may also come from flags.config or INFERNO_CONFIG. */
  file?: string;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${file}: must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** The only reader of process.env: precedence is flag > env > file > default. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const flags = { ...(sources.flags ?? {}) };
  const file = (flags.config as string | undefined) ?? sources.file ?? env.INFERNO_CONFIG;
  delete flags.config;
  const fromFile = file ? readConfigFile(file) : {};
  const fromEnv: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[envNameOf(key)];
    if (value !== undefined && value !== "") fromEnv[key] = value;
  }
  // OpenTelemetry's standard variables, below Inferno's own (README, OpenTelemetry).
  const otelEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (fromEnv.otlpEndpoint === undefined && otelEndpoint) fromEnv.otlpEndpoint = otelEndpoint;
  if (fromEnv.otlpServiceName === undefined && env.OTEL_SERVICE_NAME) fromEnv.otlpServiceName = env.OTEL_SERVICE_NAME;
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const merged = { ...fromFile, ...fromEnv, ...defined };
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join(".") || (issue.code === "unrecognized_keys" ? issue.keys.join(", ") : "(root)");
    // Looked up by top-level key: a nested path ("modelRoots.1") or a list of unknown keys matches no source.
    const top = String(issue.path[0] ?? (issue.code === "unrecognized_keys" ? issue.keys[0] : ""));
    const origin = top in defined ? "flag" : top in fromEnv ? `env ${envNameOf(top)}` : file && top in fromFile ? `file ${file}` : "config";
    throw new ConfigError(`invalid configuration for "${key}" (${origin}): ${issue.message}`);
  }
  const cfg = result.data;
  return Object.freeze({
    ...cfg,
    tuneThreads: cfg.tuneThreads ?? (merged.threads === undefined && merged.batchThreads === undefined),
    modelsDir: path.resolve(cfg.modelsDir),
    dataDir: path.resolve(cfg.dataDir),
    sharedDataDir: cfg.sharedDataDir === undefined ? undefined : path.resolve(cfg.sharedDataDir),
    modelRoots: Object.freeze(cfg.modelRoots.map((r) => path.resolve(r))) as string[],
  });
}

/** The credential a client command (`inferno mcp --url`) presents when --api-key is not given: env INFERNO_API_KEY. */
export const clientApiKey = (env: NodeJS.ProcessEnv = process.env): string | undefined => env.INFERNO_API_KEY || undefined;
