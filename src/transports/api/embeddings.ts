import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { embeddingInput, embeddingInputs, embeddingToBase64 } from "../../dialects/embedding-input.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { embed } from "../../services/embeddings.js";

export const embeddingsBody = z.object({
  model: z.string().min(1).max(256),
  input: embeddingInput,
  encoding_format: z.enum(["float", "base64"]).default("float"),
  dimensions: z.number().int().min(1).optional(),
  /** Unit vectors (default), as the OpenAI and Ollama routes answer; false gives the model's raw pooled output. */
  normalize: z.boolean().default(true),
  /** Cut inputs longer than the embedding context instead of refusing them. */
  truncate: z.boolean().default(false),
});

export const embeddingRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.post("/embeddings", { schema: { body: embeddingsBody } }, async (req, reply) => {
    const { model, input, encoding_format, dimensions, normalize, truncate } = req.body;
    const { vectors, promptTokens } = await embed(registry, { model, inputs: embeddingInputs(input), dimensions, normalize, truncate }, abortOnDisconnect(reply).signal);
    return {
      model,
      data: vectors.map((v, index) => ({ embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });
};
