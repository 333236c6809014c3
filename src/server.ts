import { onnxTextFacts, type OnnxTextFacts } from "./runtimes/onnx/onnx-text.js";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import cors from "@fastify/cors";
import authPlugin, { isCorsPreflight, type CredentialCheckers } from "./auth/auth-plugin.js";
import auditPlugin from "./audit/audit-plugin.js";
import apiVersionPlugin from "./http/api-version.js";
import { auditRoutes } from "./transports/api/audit.js";
import { redisStores, sharedJwtSecret, sqliteStores } from "./auth/credential-stores.js";
import { JwtIssuer } from "./auth/jwt.js";
import type { Config } from "./config/config.js";
import { WaitingMemory } from "./scheduler/resource-pool.js";
import { parseKeepAlive } from "./core/duration.js";
import { clientErrorHandler, frameworkError, registerErrorHandling } from "./errors/error-handler.js";
import { rateLimitPlugin, rateLimitSettings } from "./limits/rate-limit.js";
import { RedisLimitStore } from "./limits/store/redis-store.js";
import { requestTimeoutPlugin } from "./limits/request-timeout.js";
import { UsageContext } from "./limits/usage-context.js";
import { shutdownPlugin } from "./lifecycle/shutdown.js";
import { metricsPlugin } from "./observability/metrics.js";
import { requestLogPlugin } from "./observability/request-log.js";
import { openapiPlugin } from "./openapi/openapi-plugin.js";
import { tracesPlugin } from "./observability/traces.js";
import { parseBudget, parseVramBudget, systemProbe } from "./registry/memory-budget.js";
import { ModelRegistry } from "./registry/model-registry.js";
import { ModelPuller } from "./services/pull.js";
import { SharedRedis } from "./shared/redis.js";
import { openDatabase } from "./store/database.js";
import { embeddingRoutes } from "./transports/api/embeddings.js";
import { healthRoutes } from "./transports/api/health.js";
import { inferenceRoutes } from "./transports/api/inference.js";
import { authRoutes } from "./transports/api/auth.js";
import { batchRoutes } from "./transports/api/batch.js";
import { redisBatchHome } from "./transports/api/redis-batch-home.js";
import { sqliteBatchHome } from "./transports/api/sqlite-batch-home.js";
import { kserveRoutes } from "./transports/api/kserve.js";
import { modelRoutes } from "./transports/api/models.js";
import { ollamaRoutes } from "./transports/api/ollama.js";
import { openaiBatchRoutes } from "./transports/api/openai-batches.js";
import { openaiChatRoutes } from "./transports/api/openai-chat.js";
import { openaiCompletionRoutes } from "./transports/api/openai-completions.js";
import { openaiEmbeddingRoutes } from "./transports/api/openai-embeddings.js";
import { openaiRerankRoutes, rerankRoutes } from "./transports/api/rerank.js";
import { openaiFileRoutes } from "./transports/api/openai-files.js";
import { openaiModelRoutes } from "./transports/api/openai-models.js";
import { websocketRoutes, websocketSupport } from "./transports/api/websocket.js";
import { consolePlugin } from "./transports/console/console-plugin.js";
import { grpcTransport } from "./transports/grpc/grpc-plugin.js";
import { ipcTransport } from "./transports/ipc/ipc-plugin.js";
import { mcpPlugin } from "./transports/mcp/mcp-plugin.js";
import { LlamaRuntime } from "./runtimes/llama/llama-runtime.js";
import { inspectOnnx, OnnxRuntime } from "./runtimes/onnx/onnx-runtime.js";
import { FleetWebhooks } from "./webhooks/fleet-webhooks.js";
import { RedisDeliveries } from "./webhooks/redis-deliveries.js";
import webhooksPlugin from "./webhooks/webhooks.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The Redis shared with other replicas (config redisUrl); undefined for a single process. */
    sharedRedis: SharedRedis | undefined;
    registry: ModelRegistry;
    llamaRuntime: LlamaRuntime;
    routeTable: ReadonlyArray<{ method: string; url: string }>;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The response headers a browser page on an allowed origin may read (beside the CORS-safelisted ones). */
const CORS_EXPOSED_HEADERS = ["API-Version", "traceparent", "X-Request-Id", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"];

/** Share of the RAM the process may use (cgroup limit included) that requests waiting for a sequence may hold together. */
export const QUEUE_RAM_SHARE = 0.05;

function loggerOptions(config: Config, toStderr: boolean) {
  const pretty = config.logPretty ?? (toStderr ? process.stderr : process.stdout).isTTY === true;
  return {
    level: config.logLevel,
    redact: ["req.headers.authorization", "req.headers.cookie"],
    // Pretty lines show the message only for the request line and the banner; JSON keeps their fields.
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,reqId,http,startup", singleLine: true, ...(toStderr ? { destination: 2 } : {}) } } } : {}),
    // stdout is the protocol's channel when MCP runs on stdio (inferno mcp).
    ...(!pretty && toStderr ? { stream: process.stderr } : {}),
  };
}

/** The TLS files of the config, when TLS is on (both listeners use them). */
export function tlsFiles(config: Config) {
  return config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey, clientCa: config.tlsClientCa } : undefined;
}

/** Node's HTTPS options for the TLS files: with a client CA, a client without a certificate it signed is refused in the handshake. */
function httpsOptions(config: Config) {
  const tls = tlsFiles(config);
  if (!tls) return undefined;
  return {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ...(tls.clientCa ? { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
  };
}

/** Fastify's trustProxy from the config: a hop count as the function proxy-addr would make of it. */
function trustProxyOption(setting: Config["trustProxy"]): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting === "number") return (_address, hop) => hop < setting;
  return typeof setting === "boolean" ? setting : [...setting];
}

/** Builds the whole app without listening; the caller listens (or uses `inject` in tests) and closes it. */
export async function buildServer(config: Config, options: { logToStderr?: boolean } = {}): Promise<FastifyInstance> {
  const https = httpsOptions(config);
  const app = Fastify({
    ...(https ? { https } : {}),
    logger: loggerOptions(config, options.logToStderr === true),
    // One line per request from request-log.ts instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Behind nginx or a Kubernetes ingress: request.ip from X-Forwarded-For, for rate-limit keys and logs.
    trustProxy: trustProxyOption(config.trustProxy),
    // An oversized header block is refused by Node's parser (431) before it reaches a route.
    http: { maxHeaderSize: config.maxHeaderBytes },
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : `req_${randomBytes(9).toString("base64url")}`;
    },
    // Model names may be up to 256 characters (ids 128); find-my-way's default of 100 refused the longer ones.
    routerOptions: { maxParamLength: 256 },
    // Router and HTTP-parser refusals answer in the coded envelope too (see error-handler.ts).
    frameworkErrors: frameworkError,
    clientErrorHandler,
    return503OnClosing: true,
    forceCloseConnections: true,
  }).withTypeProvider<ZodTypeProvider>();

  // Shared state with other replicas (src/shared/redis.ts): connected now, closed with the app.
  const sharedRedis = config.redisUrl ? new SharedRedis({ url: config.redisUrl, log: app.log.child({ component: "redis" }) }) : undefined;
  app.decorate("sharedRedis", sharedRedis);
  if (sharedRedis) app.addHook("onClose", async () => sharedRedis.close());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  // The first onRequest hook: every answer, a CORS preflight's or an auth refusal's too, names the API version.
  await app.register(apiVersionPlugin);
  if (config.corsOrigins.length > 0) {
    // Only a real preflight gets the plugin's 204 (in its onRequest hook, ahead of auth): a plain OPTIONS
    // goes on through auth and routing like any request instead of the plugin's text/plain 400.
    await app.register(cors, {
      delegator: (request, done) =>
        done(null, { origin: config.corsOrigins, credentials: false, preflight: isCorsPreflight(request), exposedHeaders: CORS_EXPOSED_HEADERS }),
    });
  }
  await app.register(websocketSupport);
  // Every route as registered (method and URL pattern), so tests can check policies on all of them.
  const routeTable: Array<{ method: string; url: string }> = [];
  app.decorate("routeTable", routeTable);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) if (method !== "HEAD") routeTable.push({ method, url: route.url });
  });
  // Before any route: the OpenAPI document is collected from every route registered after it.
  await app.register(openapiPlugin, { metricsPublic: config.metricsPublic });
  // `curl -d '{...}'` sends form-urlencoded and some clients send text/plain: every body is read as JSON.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    app.getDefaultJsonParser("error", "error")(request, body as string, done);
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  // A waiting request is mostly its connection and prompt (about 16 KiB for a short one, see waitingBytes),
  // so the count bounds the queue; this bounds it too when prompts are large or the machine small.
  const queueMemory = new WaitingMemory(Math.floor(systemProbe().totalRam() * QUEUE_RAM_SHARE));
  const llamaRuntime = new LlamaRuntime(
    {
      gpu: config.gpu,
      threads: config.threads,
      batchThreads: config.batchThreads,
      tuneThreads: config.tuneThreads,
      streamIntervalMs: config.streamIntervalMs,
      parallel: config.parallel,
      contextSize: config.contextSize,
      batchSize: config.batchSize,
      gpuLayers: config.gpuLayers,
      queueSize: config.queueSize,
      queueTimeoutMs: config.queueTimeoutMs,
      queueMemory,
      probeModels: config.probeModels,
      dataDir: config.dataDir,
      engine: config.ggufEngine,
      ...(config.llamaServer ? { llamaServer: config.llamaServer } : {}),
    },
    app.log,
  );
  const onnxRuntime = new OnnxRuntime({
    provider: config.onnxProvider,
    intraOpThreads: config.onnxIntraOpThreads,
    interOpThreads: config.onnxInterOpThreads,
    graphOptimization: config.onnxGraphOptimization,
    maxBatchSize: config.onnxMaxBatchSize,
    maxQueueDelayMicros: config.onnxMaxQueueDelayUs,
  });
  // One database for the data dir: registrations, keys, users, batches, files, webhooks.
  const db = openDatabase(config.dataDir);
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    dataDir: config.dataDir,
    db,
    demoModels: config.demoModels,
    modelRoots: config.modelRoots,
    log: app.log,
    keepAliveMs: parseKeepAlive(config.keepAlive) ?? null,
    memory: {
      ram: parseBudget(config.memoryBudget)!,
      vram: parseVramBudget(config.vramBudget)!,
      maxLoaded: config.maxLoadedModels,
      probe: systemProbe(() => llamaRuntime.freeVram()),
    },
    runtimes: {
      gguf: {
        inspect: async (file) => {
          const s = await llamaRuntime.inspect(file);
          return { ...s, contextLength: s.context_length ?? undefined };
        },
        verify: async (file) => void (await llamaRuntime.verify(file)),
        load: (file, options, signal) => llamaRuntime.load(file, options, signal),
        estimate: (file, options) => llamaRuntime.estimate(file, options),
        capabilities: ({ architecture, pooling_type, has_classifier }, options) => llamaRuntime.capabilities({ architecture, pooling_type, has_classifier }, options),
        optionKeys: ["gpu_layers", "context_size", "batch_size", "parallel", "chat_template", "engine", "mode"],
      },
      onnx: {
        inspect: async (file) => {
          const header = await inspectOnnx(file);
          return { ...header, text: await onnxTextFacts(file, header) };
        },
        load: (file, options) => onnxRuntime.load(file, options),
        estimate: (file) => onnxRuntime.estimate(file),
        capabilities: (facts) => {
          const text = facts.text as OnnxTextFacts | undefined;
          return { capabilities: text ? ["tensor-inference", text.kind] : ["tensor-inference"] };
        },
        optionKeys: ["max_batch_size", "max_queue_delay_us", "pooling"],
      },
    },
  });
  try {
    await registry.init();
  } catch (err) {
    db.close();
    throw err;
  }
  app.decorate("registry", registry);
  app.decorate("llamaRuntime", llamaRuntime);
  app.addHook("onClose", async () => {
    await registry.close();
    await llamaRuntime.dispose();
  });

  // Before the first route, so every route gets their hooks; rate-limit checks are route hooks and so
  // run after every app-level onRequest hook, auth's included, whatever the registration order.
  await app.register(requestTimeoutPlugin, { timeoutMs: config.requestTimeoutMs });
  // Before auth and rate limits: during a drain every new request is refused with the same 503.
  await app.register(shutdownPlugin);
  // Whose tokens a generation is: set per request by the rate limiter, per item by the batch worker.
  const usage = new UsageContext();
  const redisStore = sharedRedis && new RedisLimitStore({ redis: sharedRedis, replicaId: config.replicaId, leaseMs: config.concurrencyLeaseMs, log: app.log });
  await app.register(rateLimitPlugin, { ...rateLimitSettings(config), generations: registry, usage, redisStore });
  // Replicas sharing a Redis are told apart by the `replica` label of every metric.
  await app.register(metricsPlugin, { registry, ...(sharedRedis ? { replica: config.replicaId } : {}) });
  await app.register(tracesPlugin, { registry, otlpEndpoint: config.otlpEndpoint, serviceName: config.otlpServiceName });
  await app.register(requestLogPlugin, { registry });
  // Keys and users in the data dir's SQLite, or in Redis shared with the other replicas (credential-stores.ts).
  const { keys, users, roles, close: closeCredentials } = sharedRedis ? redisStores(sharedRedis) : sqliteStores(db);
  app.addHook("preClose", async () => closeCredentials());
  // Replicas share the generated JWT secret through Redis (only with auth on: without it Redis need not be up to start).
  const jwtSecret = config.jwtSecret ?? (sharedRedis && config.auth ? await sharedJwtSecret(sharedRedis) : undefined);
  const jwt = new JwtIssuer({ secret: jwtSecret, dataDir: config.dataDir, expiresIn: config.jwtExpiresIn });
  // Opened before the registry (which keeps its registrations there); its close keeps its place among the hooks.
  app.addHook("onClose", async () => db.close());
  // After the database's close hook, so its own close (flushing folded auth failures) runs before it.
  await app.register(auditPlugin, { db, replica: config.replicaId, retentionDays: config.auditRetentionDays, config });
  const checkers: CredentialCheckers = { verifyApiKey: (key) => keys.verify(key), verifyJwt: (token) => roles.current(jwt.verify(token)) };
  await app.register(authPlugin, { enabled: config.auth, metricsPublic: config.metricsPublic, cors: config.corsOrigins.length > 0, ...checkers });
  await app.register(authRoutes, { keys, users, jwt });
  await app.register(auditRoutes);
  // Before the inference routes: its preHandler ties generations to their request for inference.complete.
  const webhookLog = app.log.child({ component: "webhooks" });
  const fleetWebhooks = sharedRedis
    ? new FleetWebhooks(sharedRedis, new RedisDeliveries({ url: config.redisUrl!, prefix: sharedRedis.prefix, allowPrivate: config.webhookAllowPrivate, log: webhookLog }), webhookLog)
    : undefined;
  await app.register(webhooksPlugin, { db, registry, allowPrivate: config.webhookAllowPrivate, fleet: fleetWebhooks });

  const limits = { defaultMaxTokens: config.defaultMaxTokens, maxTokensLimit: config.maxTokensLimit, maxTensorElements: config.maxTensorElements };
  await app.register(healthRoutes, { registry, startedAt: Date.now(), redis: sharedRedis });
  const puller = new ModelPuller({ registry, modelsDir: config.modelsDir, hfEndpoint: config.hfEndpoint, allowPrivate: config.pullAllowPrivate });
  await app.register(modelRoutes, { registry, puller });
  await app.register(inferenceRoutes, { registry, limits });
  await app.register(embeddingRoutes, { registry });
  await app.register(rerankRoutes, { registry });
  // Each compatible API family is one plugin under its prefix.
  await app.register(async (ollama) => ollama.register(ollamaRoutes, { registry, limits, puller }), { prefix: "/api" });
  await app.register(async (kserve) => kserve.register(kserveRoutes, { registry, limits }), { prefix: "/v2" });
  // Batches (native and OpenAI) and their files: one SQLite engine, or with redisUrl the replicas' shared queue.
  const batchOptions = { registry, limits, concurrency: config.batchConcurrency, usage };
  const home = sharedRedis
    ? redisBatchHome(app, sharedRedis, {
        ...batchOptions, url: config.redisUrl!, replicaId: config.replicaId, sharedDataDir: config.sharedDataDir ?? config.dataDir,
        deliveries: fleetWebhooks!.deliveries,
      })
    : sqliteBatchHome(app, db, { ...batchOptions, dataDir: config.dataDir });
  const { files } = home;
  await app.register(batchRoutes, { backend: home.batches, registry, limits, webhooks: app.webhooks });
  await app.register(
    async (v1) => {
      await v1.register(openaiChatRoutes, { registry, limits });
      await v1.register(openaiCompletionRoutes, { registry, limits });
      await v1.register(openaiEmbeddingRoutes, { registry });
      await v1.register(openaiRerankRoutes, { registry });
      await v1.register(openaiModelRoutes, { registry });
      await v1.register(openaiFileRoutes, { files });
      await v1.register(openaiBatchRoutes, { files, backend: home.openai, registry, limits });
    },
    { prefix: "/v1" },
  );
  await app.register(consolePlugin);
  await app.register(websocketRoutes, { registry, limits, auth: { enabled: config.auth, checkers }, draining: app.drainSignal });
  // The transports that are not Fastify routes get the same registry, limits and auth.
  const transport = { registry, limits, auth: { enabled: config.auth, checkers }, requestTimeoutMs: config.requestTimeoutMs };
  if (config.grpcEnabled) {
    await app.register(grpcTransport, { ...transport, maxMessageBytes: config.bodyLimit, tls: tlsFiles(config) });
  }
  if (config.mcpEnabled) {
    const batches = { backend: home.batches, registry, limits, webhooks: app.webhooks };
    await app.register(mcpPlugin, { ...transport, batches, idleMs: config.mcpSessionIdleMs, maxSessions: config.mcpMaxSessions, allowedOrigins: config.corsOrigins });
  }
  if (config.ipcSocket) {
    await app.register(ipcTransport, {
      ...transport, socketPath: config.ipcSocket, mode: config.ipcSocketMode, settings: { maxFrameBytes: config.ipcMaxFrameBytes, maxInFlight: config.ipcMaxInFlight },
    });
  }
  return app;
}
