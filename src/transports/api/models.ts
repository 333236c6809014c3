import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { MODES } from "../../core/capabilities.js";
import type { ModelEntry, ModelFacts, ModelRegistry } from "../../registry/model-registry.js";
import type { LoadedModel } from "../../runtimes/loaded-model.js";
import { OnnxModel } from "../../runtimes/onnx/onnx-model.js";
import { modelIdParams } from "../../http/params.js";


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

/** A tensor model's inputs and outputs (dynamic dims by their symbolic name, or -1), loaded or read from the file. */
function signatureOf(loaded: LoadedModel | undefined, facts: ModelFacts | undefined) {
  if (loaded instanceof OnnxModel) return { inputs: loaded.inputs, outputs: loaded.outputs };
  return { inputs: facts?.inputs ?? null, outputs: facts?.outputs ?? null };
}

/** What a loaded model holds: the API reference's total, and its split between RAM and GPU memory. */
function memoryFields(model: LoadedModel) {
  const { ram, vram } = model.memoryUsage();
  return { memory_usage_bytes: ram + vram, memory: { ram_bytes: ram, vram_bytes: vram } };
}

/** A model as `GET /models` shows it (fields of the API reference plus a few of Inferno's). */
export async function describeModel(registry: ModelRegistry, entry: ModelEntry, detailed = false) {
  const loaded = registry.getLoaded(entry.id);
  const facts = await registry.facts(entry).catch(() => undefined);
  const trained = typeof facts?.contextLength === "number" ? facts.contextLength : null;
  return {
    id: entry.id,
    name: entry.name,
    type: entry.type,
    size_bytes: entry.sizeBytes,
    loaded: loaded !== undefined,
    context_size: loaded?.contextSize ?? trained,
    capabilities: (await registry.capabilities(entry).catch(() => undefined))?.capabilities ?? [],
    source: entry.source,
    created: entry.created,
    ...(loaded ? { ...memoryFields(loaded), options: loaded.options } : {}),
    ...(entry.type === "onnx" ? signatureOf(loaded, facts) : {}),
    ...(detailed ? { details: facts ?? null, registration_options: entry.options } : {}),
  };
}

export const modelRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
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
    return reply.code(201).send(await describeModel(registry, entry, true));
  });

  app.post("/models/:id/load", { schema: { params: modelIdParams, body: loadOptionsSchema.optional() }, config: admin }, async (req) => {
    const model = await registry.load(req.params.id, req.body ?? {});
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
    return { status: "unloaded", model_id: req.params.id, was_loaded: wasLoaded };
  });

  app.delete("/models/:id", { schema: { params: modelIdParams }, config: admin }, async (req) => {
    await registry.unregister(req.params.id);
    return { status: "deleted", model_id: req.params.id };
  });
};
