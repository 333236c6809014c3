import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { keepAliveFor, requireModelControl } from "../../auth/model-control.js";
import { collectGeneration } from "../../core/generation.js";
import { mapGeneration } from "../../core/stream-utils.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { chatBody, chatEvents, chatStatus, collectChat, toChatRequest } from "../../dialects/ollama/chat.js";
import { generateBody, generateOut, startPlan, toGeneratePlan, type Timing } from "../../dialects/ollama/generate.js";
import {
  applyKeepAlive, keepAliveOf, modelIdOf, ns, prepareTextModel, psEntry, showModel, tagEntry,
} from "../../dialects/ollama/models.js";
import { keepAliveField, ollamaOptions } from "../../dialects/ollama/options.js";
import { pullBody, pullLines, pullSourceOf } from "../../dialects/ollama/pull.js";
import { InfernoError } from "../../errors/catalogue.js";
import { errorBody } from "../../errors/error-handler.js";
import { sendNdjson } from "../../http/ndjson.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startChat } from "../../services/chat.js";
import type { ModelPuller } from "../../services/pull.js";
import { embed } from "../../services/embeddings.js";
import { VERSION } from "../../version.js";
import { redactUrl } from "../../audit/redact-config.js";

/** The Ollama API level we answer as: one that current clients accept. */
const OLLAMA_VERSION = "0.12.0";
const ollama = { dialect: "ollama" as const };
const modelName = z.string().min(1).max(256);
const longText = z.string().max(1_000_000);

const showBody = z.object({ model: modelName.nullish(), name: modelName.nullish(), verbose: z.boolean().nullish() });
const embedBody = z.object({
  model: modelName,
  input: z.union([longText, z.array(longText).max(2048)]).nullish(),
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().min(1).nullish(),
  options: ollamaOptions,
  keep_alive: keepAliveField,
});
const embeddingsBody = z.object({ model: modelName, prompt: longText.nullish(), options: ollamaOptions, keep_alive: keepAliveField });

export const ollamaRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits; puller: ModelPuller }> = async (
  app,
  { registry, limits, puller },
) => {
  /** The part of a request's keep_alive its principal may set (a user's never shortens the server's). */
  const allowedKeepAlive = (req: FastifyRequest, asked: number | null | undefined) =>
    keepAliveFor(req.principal, asked, registry.defaultKeepAliveMs);

  /**
   * No prompt / no messages: load the model, or unload it with keep_alive 0 (once idle). Unloading
   * needs the admin role (src/auth/model-control.ts): a user's call is a 403, never a pretended unload.
   */
  async function loadOrUnload(req: FastifyRequest, id: string, keepAlive: number | null | undefined, numCtx: number | null | undefined) {
    const startedAt = performance.now();
    if (keepAlive === 0) {
      requireModelControl(req.principal, `unloading model '${id}'`, { model: id });
      await registry.get(id);
      // Unloaded now when idle; a busy model goes once its requests end (keep-alive 0 re-checks until then).
      await registry.unload(id).catch((err: unknown) => {
        if (!(err instanceof InfernoError && err.code === "MODEL_BUSY")) throw err;
        registry.setKeepAlive(id, 0);
      });
      req.audit("model.unload", id, { keep_alive: 0 });
      return { reason: "unload" as const, timing: { startedAt, loadMs: 0 } };
    }
    const loadMs = await prepareTextModel(registry, id, numCtx, allowedKeepAlive(req, keepAlive), req.principal, "text-generation");
    return { reason: "load" as const, timing: { startedAt, loadMs } };
  }

  /** Sends a generation as NDJSON; the error line is Ollama's `{"error": "..."}`, which its clients throw. */
  async function stream(req: FastifyRequest, reply: FastifyReply, events: AsyncIterable<unknown>) {
    await sendNdjson(req, reply, events, (err) => errorBody(err, "ollama", req.id));
    return reply;
  }

  app.get("/version", { config: ollama }, async () => ({ version: OLLAMA_VERSION, inferno_version: VERSION }));

  app.get("/tags", { config: ollama }, async () => {
    await registry.scan();
    return { models: await Promise.all(registry.list().filter((m) => !m.missing).map((entry) => tagEntry(registry, entry))) };
  });

  // Admin only and without a time limit, as POST /models/pull (see there).
  app.post("/pull", { schema: { body: pullBody }, config: { ...ollama, role: "admin", timeLimit: false } }, async (req, reply) => {
    const model = req.body.model ?? req.body.name;
    if (!model) throw new InfernoError("INVALID_REQUEST", "model is required", undefined, { param: "model" });
    const pull = await puller.start({ source: pullSourceOf(model) }, abortOnDisconnect(reply).signal);
    req.audit("model.pull", model, { source: redactUrl(pullSourceOf(model)) });
    if (req.body.stream !== false) return stream(req, reply, pullLines(pull));
    let last: Record<string, unknown> | undefined;
    for await (const line of pullLines(pull)) last = line;
    if (last?.status !== "success") throw new InfernoError("CANCELLED", "the pull was stopped");
    return last;
  });

  app.post("/show", { schema: { body: showBody }, config: ollama }, async (req) => {
    const name = req.body.model ?? req.body.name;
    if (!name) throw new InfernoError("INVALID_REQUEST", "model is required", undefined, { param: "model" });
    return showModel(registry, await registry.get(modelIdOf(name)));
  });

  app.get("/ps", { config: ollama }, async () => ({
    models: await Promise.all(registry.loadedModels().map(([id, model]) => psEntry(registry, id, model))),
  }));

  app.post("/generate", { schema: { body: generateBody }, config: ollama }, async (req, reply) => {
    const body = req.body;
    const id = modelIdOf(body.model);
    const asked = keepAliveOf(body.keep_alive);
    if (!body.prompt && !body.suffix) {
      const { reason, timing } = await loadOrUnload(req, id, asked, body.options?.num_ctx);
      return generateOut.status(body.model, reason, timing);
    }
    const keepAlive = allowedKeepAlive(req, asked);
    const plan = toGeneratePlan(id, body, limits);
    const startedAt = performance.now();
    const timing: Timing = { startedAt, loadMs: await prepareTextModel(registry, id, body.options?.num_ctx, keepAlive, req.principal, "text-generation") };
    const controller = abortOnDisconnect(reply);
    try {
      const generation = await startPlan(registry, plan, controller.signal);
      if (body.stream === false) {
        const r = await collectGeneration(generation);
        return generateOut.done(body.model, r, timing, r.text);
      }
      const events = mapGeneration<object>(
        generation,
        (c) => generateOut.chunk(body.model, c.text),
        (r) => [generateOut.done(body.model, r, timing)],
      );
      return await stream(req, reply, events);
    } finally {
      applyKeepAlive(registry, id, keepAlive);
    }
  });

  app.post("/chat", { schema: { body: chatBody }, config: ollama }, async (req, reply) => {
    const body = req.body;
    const id = modelIdOf(body.model);
    const asked = keepAliveOf(body.keep_alive);
    const chat = toChatRequest(id, body, limits);
    if (chat.messages.length === 0) {
      const { reason } = await loadOrUnload(req, id, asked, body.options?.num_ctx);
      return chatStatus(body.model, reason);
    }
    const keepAlive = allowedKeepAlive(req, asked);
    const startedAt = performance.now();
    const timing: Timing = { startedAt, loadMs: await prepareTextModel(registry, id, body.options?.num_ctx, keepAlive, req.principal, "text-generation") };
    const controller = abortOnDisconnect(reply);
    try {
      const gen = await startChat(registry, chat, controller.signal);
      if (body.stream === false) return await collectChat(gen, body.model, timing);
      return await stream(req, reply, chatEvents(gen, body.model, timing));
    } finally {
      applyKeepAlive(registry, id, keepAlive);
    }
  });

  app.post("/embed", { schema: { body: embedBody }, config: ollama }, async (req, reply) => {
    const body = req.body;
    const id = modelIdOf(body.model);
    const keepAlive = allowedKeepAlive(req, keepAliveOf(body.keep_alive));
    const startedAt = performance.now();
    const loadMs = await prepareTextModel(registry, id, body.options?.num_ctx, keepAlive, req.principal, "embeddings");
    const inputs = body.input == null ? [] : Array.isArray(body.input) ? body.input : [body.input];
    try {
      // An empty input only loads the model, as Ollama's clients use it; `truncate` is Ollama's default.
      const { vectors, promptTokens } =
        inputs.length === 0
          ? { vectors: [], promptTokens: 0 }
          : await embed(registry, { model: id, inputs, truncate: body.truncate !== false, dimensions: body.dimensions ?? undefined }, abortOnDisconnect(reply).signal);
      return {
        model: body.model,
        embeddings: vectors,
        total_duration: ns(performance.now() - startedAt),
        load_duration: ns(loadMs),
        prompt_eval_count: promptTokens,
      };
    } finally {
      applyKeepAlive(registry, id, keepAlive);
    }
  });

  app.post("/embeddings", { schema: { body: embeddingsBody }, config: ollama }, async (req, reply) => {
    const body = req.body;
    const id = modelIdOf(body.model);
    const keepAlive = allowedKeepAlive(req, keepAliveOf(body.keep_alive));
    await prepareTextModel(registry, id, body.options?.num_ctx, keepAlive, req.principal, "embeddings");
    try {
      if (!body.prompt) return { embedding: [] };
      // The legacy route neither normalises nor refuses a long prompt, as Ollama's.
      const { vectors } = await embed(registry, { model: id, inputs: [body.prompt], truncate: true, normalize: false }, abortOnDisconnect(reply).signal);
      return { embedding: vectors[0] ?? [] };
    } finally {
      applyKeepAlive(registry, id, keepAlive);
    }
  });
};
