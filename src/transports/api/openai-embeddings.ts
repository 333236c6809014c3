import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { createEmbeddings, embeddingsBody } from "../../dialects/openai/embeddings.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";

export const openaiEmbeddingRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.post("/embeddings", { schema: { body: embeddingsBody }, config: { dialect: "openai" } }, async (req, reply) =>
    createEmbeddings(registry, req.body, abortOnDisconnect(reply).signal),
  );
};
