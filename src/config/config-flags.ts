// The CLI's options, derived from configSchema: every key is a flag (`--kebab-case`, `--model-root` for
// modelRoots, repeatable), a boolean that defaults to off is a switch, and the help lists them all with
// their defaults and environment names. The help table is keyed by the schema, so a key added without a
// line here does not compile.
import { configSchema, envNameOf } from "./config.js";

export type ConfigKey = keyof typeof configSchema.shape;

interface FlagHelp {
  /** The value's placeholder; none for a switch. */
  arg?: string;
  help: string;
  /** The default as help shows it, when the computed one depends on the machine. */
  shown?: string;
}

const HELP: Record<ConfigKey, FlagHelp> = {
  host: { arg: "H", help: "bind address" },
  port: { arg: "P", help: "port" },
  grpcEnabled: { arg: "BOOL", help: "serve gRPC (KServe v2 / Triton) too" },
  grpcPort: { arg: "P", help: "gRPC port, same host (0: any free port)" },
  ipcSocket: { arg: "PATH", help: "serve the IPC protocol on this Unix socket (docs/ipc.md)" },
  ipcSocketMode: { arg: "MODE", help: "file mode of the IPC socket (octal)", shown: "0600" },
  ipcMaxFrameBytes: { arg: "BYTES", help: "largest IPC frame (the connection is closed above)" },
  ipcMaxInFlight: { arg: "N", help: "requests one IPC connection may have running" },
  mcpEnabled: { arg: "BOOL", help: "serve MCP (Model Context Protocol) at /mcp" },
  mcpSessionIdleMs: { arg: "MS", help: "close an MCP session idle this long" },
  mcpMaxSessions: { arg: "N", help: "MCP sessions open at once (503 beyond)" },
  tlsCert: { arg: "FILE", help: "PEM certificate chain: HTTPS and gRPC over TLS" },
  tlsKey: { arg: "FILE", help: "PEM private key of --tls-cert" },
  tlsClientCa: { arg: "FILE", help: "PEM CA: require client certificates it signed (mTLS)" },
  modelsDir: { arg: "DIR", help: "model folder" },
  dataDir: { arg: "DIR", help: "registrations and other state (inferno.db)" },
  demoModels: { arg: "BOOL", help: "serve the demo models (demo/models) while the models dir is empty" },
  modelRoots: { arg: "DIR", help: "extra folder models may be registered from (repeatable; env: ':'-separated)" },
  threads: { arg: "N", help: "llama.cpp threads for one-token batches", shown: "cores with the thread-pool addon, else cores - 1" },
  batchThreads: { arg: "N", help: "llama.cpp threads for prompts and multi-stream batches", shown: "cores" },
  tuneThreads: { arg: "BOOL", help: "measure fewer threads for a small CPU model at load; use the fastest", shown: "true unless --threads or --batch-threads is set" },
  streamIntervalMs: { arg: "MS|auto", help: "send a stream's tokens in groups at most this often (0: each at once; auto: 20 when decoding takes every core)" },
  gpu: { arg: "G", help: "auto|cpu|cuda|vulkan|metal" },
  ggufEngine: { arg: "E", help: "node-llama-cpp (in-process) or llama-server (a child per model)" },
  llamaServer: { arg: "PATH", help: "llama-server binary for that engine", shown: "npm run build:llama-server's" },
  parallel: { arg: "N", help: "sequences per GGUF model, decoded together" },
  contextSize: { arg: "N", help: "tokens per sequence (capped at the model's trained size)" },
  queueSize: { arg: "N", help: "requests that may wait for a sequence, per model (503 beyond)" },
  queueTimeoutMs: { arg: "MS", help: "longest wait for a sequence (504 after)" },
  batchSize: { arg: "N", help: "prompt batch size" },
  gpuLayers: { arg: "N", help: "layers on the GPU: auto|max|N" },
  keepAlive: { arg: "D", help: "unload a model idle this long (seconds or 5m/1h; negative: never)" },
  memoryBudget: { arg: "SIZE", help: "RAM loaded models may hold: auto, bytes, 8GiB, or 75%" },
  vramBudget: { arg: "SIZE", help: "GPU memory loads may take: auto or a size" },
  maxLoadedModels: { arg: "N", help: "models loaded at once (0: no limit)" },
  probeModels: { arg: "BOOL", help: "open each new GGUF file in a child process before loading it" },
  onnxProvider: { arg: "P", help: "cpu|cuda|auto" },
  onnxIntraOpThreads: { arg: "N", help: "onnxruntime intra-op threads", shown: "cores - 1, at least 1" },
  onnxInterOpThreads: { arg: "N", help: "onnxruntime inter-op threads" },
  onnxGraphOptimization: { arg: "L", help: "disabled|basic|extended|all" },
  onnxMaxBatchSize: { arg: "N", help: "rows per merged ONNX run (1: no batching)" },
  onnxMaxQueueDelayUs: { arg: "US", help: "how long an ONNX request waits for others to batch with" },
  maxTensorElements: { arg: "N", help: "largest tensor a request may send (413 above)" },
  maxTokensLimit: { arg: "N", help: "largest max_tokens a request may ask for" },
  defaultMaxTokens: { arg: "N", help: "max_tokens when a request gives none" },
  bodyLimit: { arg: "BYTES", help: "request body cap (413 above)" },
  logLevel: { arg: "L", help: "fatal|error|warn|info|debug|trace|silent" },
  logPretty: { help: "pretty logs even when not on a terminal", shown: "on a terminal" },
  auth: { help: "require an API key or JWT on every route but /health" },
  insecure: { help: "allow a non-loopback --host without --auth" },
  jwtSecret: { arg: "S", help: "HMAC secret for JWTs, at least 32 characters (prefer the env or a file: flags show in ps)", shown: "generated" },
  jwtExpiresIn: { arg: "D", help: "JWT lifetime" },
  corsOrigins: { arg: "LIST", help: "comma-separated origins allowed by CORS" },
  metricsPublic: { help: "serve /metrics without credentials" },
  rateLimit: { help: "per-key/IP rate limits", shown: "on when --auth is" },
  requestsPerMinute: { arg: "N", help: "rate limit: requests per minute" },
  requestsPerHour: { arg: "N", help: "rate limit: requests per hour" },
  tokensPerMinute: { arg: "N", help: "rate limit: generated tokens per minute" },
  concurrentRequests: { arg: "N", help: "rate limit: requests at once" },
  concurrencyLeaseMs: { arg: "MS", help: "with --redis-url: a dead replica's concurrency slots come free after this" },
  requestTimeoutMs: { arg: "MS", help: "per-request time limit (504 after)" },
  shutdownGraceMs: { arg: "MS", help: "on SIGTERM, how long open requests may finish" },
  maxHeaderBytes: { arg: "BYTES", help: "request header cap (431 above)" },
  batchConcurrency: { arg: "N", help: "batch items run at once" },
  webhookAllowPrivate: { help: "allow webhook targets on private and loopback addresses" },
  pullAllowPrivate: { help: "let POST /models/pull download from private and loopback addresses" },
  hfEndpoint: { arg: "URL", help: "where pull hf:... downloads from" },
  redisUrl: { arg: "URL", help: "share keys, limits, batches and webhooks with other replicas through this Redis" },
  replicaId: { arg: "ID", help: "this replica's name (metrics label, Redis)", shown: "host-pid" },
  sharedDataDir: { arg: "DIR", help: "with --redis-url: folder all replicas mount for files and batch results", shown: "dataDir" },
  trustProxy: { arg: "LIST", help: "believe X-Forwarded-For from these proxies: true, a hop count, or addresses/CIDRs" },
  otlpEndpoint: { arg: "URL", help: "export traces to this OpenTelemetry collector, OTLP HTTP/protobuf (or env OTEL_EXPORTER_OTLP_ENDPOINT)" },
  otlpServiceName: { arg: "NAME", help: "service.name of exported spans (or env OTEL_SERVICE_NAME)" },
  auditRetentionDays: { arg: "DAYS", help: "days the audit log keeps events (0: forever)" },
};

const KEYS = Object.keys(configSchema.shape) as ConfigKey[];

/** `--model-root` for modelRoots (one folder per flag), else the key in kebab-case. */
export const flagOf = (key: ConfigKey): string => (key === "modelRoots" ? "model-root" : key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()));

const defaultOf = (key: ConfigKey): unknown => {
  const r = configSchema.shape[key].safeParse(undefined);
  return r.success ? r.data : undefined;
};

/** A boolean key that is off unless set is a switch (`--auth`); one that defaults to on takes a value (`--probe-models false`). */
const isSwitch = (key: ConfigKey) => HELP[key].arg === undefined && configSchema.shape[key].safeParse(true).success && defaultOf(key) !== true;

/** parseArgs options for every config key. */
export function configFlagOptions(): Record<string, { type: "string" | "boolean"; multiple?: boolean }> {
  return Object.fromEntries(
    KEYS.map((k) => [flagOf(k), isSwitch(k) ? { type: "boolean" as const } : { type: "string" as const, ...(k === "modelRoots" ? { multiple: true } : {}) }]),
  );
}

/** Parsed flag values (by flag name) as config keys; flags that name no key are left out. */
export function configFromFlags(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KEYS) {
    const v = values[flagOf(k)];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

const show = (v: unknown): string | undefined => {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.length ? v.join(",") : undefined;
  return String(v);
};

/** The options part of `inferno --help`: every key, its default and its environment variable. */
export function configFlagHelp(): string {
  return KEYS.map((k) => {
    const h = HELP[k];
    const flag = `  --${flagOf(k)}${h.arg ? ` ${h.arg}` : ""}`;
    const def = h.shown ?? show(defaultOf(k));
    const text = `${h.help}${def !== undefined ? ` (default ${def})` : ""}`;
    return `${flag.padEnd(32)} ${text}  ${envNameOf(k)}`;
  }).join("\n");
}
