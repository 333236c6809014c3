import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import type { Config } from "./config/config.js";
import { parseKeepAlive } from "./core/duration.js";
import { registerErrorHandling } from "./errors/error-handler.js";
import { ModelRegistry } from "./registry/model-registry.js";
import { embeddingRoutes } from "./routes/embeddings.js";
import { healthRoutes } from "./routes/health.js";
import { inferenceRoutes } from "./routes/inference.js";
import { kserveRoutes } from "./routes/kserve.js";
import { modelRoutes } from "./routes/models.js";
import { ollamaRoutes } from "./routes/ollama.js";
import { openaiChatRoutes } from "./routes/openai-chat.js";
import { openaiCompletionRoutes } from "./routes/openai-completions.js";
import { openaiEmbeddingRoutes } from "./routes/openai-embeddings.js";
import { openaiModelRoutes } from "./routes/openai-models.js";
import { inspectGguf, LlamaRuntime } from "./runtimes/llama/llama-runtime.js";
import { inspectOnnx, OnnxRuntime } from "./runtimes/onnx/onnx-runtime.js";

declare module "fastify" {
  interface FastifyInstance {
    registry: ModelRegistry;
    llamaRuntime: LlamaRuntime;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function loggerOptions(config: Config) {
  const pretty = config.logPretty ?? process.stdout.isTTY === true;
  return {
    level: config.logLevel,
    redact: ["req.headers.authorization", "req.headers.cookie"],
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } } : {}),
  };
}

/** Builds the whole app without listening; the caller listens (or uses `inject` in tests) and closes it. */
export async function buildServer(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config),
    bodyLimit: config.bodyLimit,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : `req_${randomBytes(9).toString("base64url")}`;
    },
    return503OnClosing: true,
    forceCloseConnections: true,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  // `curl -d '{...}'` sends form-urlencoded and some clients send text/plain: every body is read as JSON.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    app.getDefaultJsonParser("error", "error")(request, body as string, done);
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  const llamaRuntime = new LlamaRuntime(
    {
      gpu: config.gpu,
      threads: config.threads,
      parallel: config.parallel,
      contextSize: config.contextSize,
      batchSize: config.batchSize,
      gpuLayers: config.gpuLayers,
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
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    dataDir: config.dataDir,
    modelRoots: config.modelRoots,
    log: app.log,
    keepAliveMs: parseKeepAlive(config.keepAlive) ?? null,
    runtimes: {
      gguf: {
        inspect: async (file) => {
          const s = await inspectGguf(file);
          return { ...s, contextLength: s.context_length ?? undefined };
        },
        load: (file, options, signal) => llamaRuntime.load(file, options, signal),
        optionKeys: ["gpu_layers", "context_size", "batch_size", "parallel", "chat_template"],
      },
      onnx: {
        inspect: async (file) => ({ ...(await inspectOnnx(file)) }),
        load: (file, options) => onnxRuntime.load(file, options),
        optionKeys: ["max_batch_size", "max_queue_delay_us"],
      },
    },
  });
  await registry.init();
  app.decorate("registry", registry);
  app.decorate("llamaRuntime", llamaRuntime);
  app.addHook("onClose", async () => {
    await registry.close();
    await llamaRuntime.dispose();
  });

  const limits = { defaultMaxTokens: config.defaultMaxTokens, maxTokensLimit: config.maxTokensLimit, maxTensorElements: config.maxTensorElements };
  await app.register(healthRoutes, { registry, startedAt: Date.now() });
  await app.register(modelRoutes, { registry });
  await app.register(inferenceRoutes, { registry, limits });
  await app.register(embeddingRoutes, { registry });
  await app.register(openaiChatRoutes, { registry, limits });
  await app.register(kserveRoutes, { registry, limits });
  await app.register(ollamaRoutes, { registry, limits });
  await app.register(openaiCompletionRoutes, { registry, limits });
  await app.register(openaiEmbeddingRoutes, { registry });
  await app.register(openaiModelRoutes, { registry });
  return app;
}
