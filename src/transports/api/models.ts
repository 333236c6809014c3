import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { MODES } from "../../core/capabilities.js";
import { describeModel, memoryFields } from "../../dialects/model-description.js";
import { InfernoError } from "../../errors/catalogue.js";
import { sendNdjson } from "../../http/ndjson.js";
import { modelIdParams } from "../../http/params.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { ModelPuller, PullEvent } from "../../services/pull.js";
import { redactUrl } from "../../audit/redact-config.js";

/** Load options every runtime accepts; unknown keys are refused rather than passed to native code. */
export const loadOptionsSchema = z
  .object({
    gpu_layers: z.union([z.number().int().min(0).max(100000), z.enum(["auto", "max"])]).optional(),
    context_size: z.number().int().min(64).max(1 << 20).optional(),
    batch_size: z.number().int().min(1).max(1 << 16).optional(),
    parallel: z.number().int().min(1).max(256).optional(),
    /** "auto", a node-llama-cpp chat wrapper name (e.g. "llama3.1", "chatML"), or Jinja template source. */
    chat_template: z.string().min(1).max(65536).optional(),
    /** What runs a GGUF model (README, GGUF engines); the server's ggufEngine by default. */
    engine: z.enum(["node-llama-cpp", "llama-server"]).optional(),
    /** Narrows a GGUF model to one use (README, Capabilities); the file decides by default. */
    mode: z.enum(MODES).optional(),
    max_batch_size: z.number().int().min(1).max(4096).optional(),
    /** An ONNX text encoder's pooling (README, ONNX text models); its 1_Pooling/config.json, else mean, by default. */
    pooling: z.enum(["mean", "cls"]).optional(),
    max_queue_delay_us: z.number().int().min(0).max(10_000_000).optional(),
  })
  .strict();

const registerBody = z.object({
  name: z.string().min(1).max(128),
  path: z.string().min(1).max(4096),
  options: loadOptionsSchema.optional(),
}).strict();

const pullBody = z.object({
  /** An http(s) URL or hf:OWNER/REPO[@REVISION]/FILE. */
  source: z.string().min(1).max(4096),
  /** The model id; the remote file name without its extension by default. */
  name: z.string().min(1).max(128).optional(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "expected 64 hexadecimal digits").optional(),
  force: z.boolean().optional(),
  /** false: one JSON object once the pull is done, instead of NDJSON progress. */
  stream: z.boolean().optional(),
}).strict();

export const modelRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; puller: ModelPuller }> = async (app, { registry, puller }) => {
  app.get("/models", async () => {
    await registry.scan();
    return { models: await Promise.all(registry.list().map((m) => describeModel(registry, m))) };
  });

  app.get("/models/:id", { schema: { params: modelIdParams } }, async (req) =>
    describeModel(registry, await registry.get(req.params.id), true),
  );

  const admin = { role: "admin" as const };

  app.post("/models", { schema: { body: registerBody }, config: admin }, async (req, reply) => {
    const entry = await registry.register(req.body);
    req.audit("model.register", entry.id, { path: entry.path, ...(req.body.options ? { options: req.body.options } : {}) });
    return reply.code(201).send(await describeModel(registry, entry, true));
  });

  /** The native pull lines: progress as is; success carries the model as GET /models/:id shows it. */
  async function* pullLines(events: AsyncIterable<PullEvent>) {
    for await (const e of events) {
      if (e.status !== "success") yield e;
      else yield { status: "success", model: await describeModel(registry, await registry.get(e.id), true) };
    }
  }

  // No time limit: a large model takes longer than requestTimeoutMs; the client leaving stops it.
  app.post("/models/pull", { schema: { body: pullBody }, config: { ...admin, timeLimit: false } }, async (req, reply) => {
    const { stream = true, ...request } = req.body;
    const pull = await puller.start(request, abortOnDisconnect(reply).signal);
    req.audit("model.pull", request.name, { source: redactUrl(request.source), ...(request.force ? { force: true } : {}) });
    if (stream) {
      await sendNdjson(req, reply, pullLines(pull.events), (err) => ({ status: "error", error: { code: err.code, message: err.message, details: err.details ?? {} } }));
      return reply;
    }
    let last: unknown;
    for await (const line of pullLines(pull.events)) last = line;
    if (!last || (last as { status?: string }).status !== "success") throw new InfernoError("CANCELLED", "the pull was stopped");
    return last;
  });

  app.post("/models/:id/load", { schema: { params: modelIdParams, body: loadOptionsSchema.optional() }, config: admin }, async (req) => {
    const model = await registry.load(req.params.id, req.body ?? {});
    req.audit("model.load", req.params.id, { options: req.body ?? {} });
    return {
      status: "loaded",
      model_id: req.params.id,
      ...memoryFields(model),
      load_time_ms: Math.round(model.loadTimeMs),
      context_size: model.contextSize,
      options: model.options,
    };
  });

  app.post("/models/:id/unload", { schema: { params: modelIdParams }, config: admin }, async (req) => {
    await registry.get(req.params.id);
    const wasLoaded = await registry.unload(req.params.id);
    req.audit("model.unload", req.params.id, { was_loaded: wasLoaded });
    return { status: "unloaded", model_id: req.params.id, was_loaded: wasLoaded };
  });

  app.delete("/models/:id", { schema: { params: modelIdParams }, config: admin }, async (req) => {
    await registry.unregister(req.params.id);
    req.audit("model.delete", req.params.id);
    return { status: "deleted", model_id: req.params.id };
  });
};
