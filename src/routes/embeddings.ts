import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { embeddingToBase64 } from "../dialects/openai/embeddings.js";
import { abortOnDisconnect } from "../http/sse.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { textModel } from "../scheduler/text-generation.js";

const embeddingsBody = z.object({
  model: z.string().min(1).max(256),
  input: z.union([z.string().max(1_000_000), z.array(z.string().max(1_000_000)).min(1).max(2048)]),
  encoding_format: z.enum(["float", "base64"]).default("float"),
});

export const embeddingRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.post("/embeddings", { schema: { body: embeddingsBody } }, async (req, reply) => {
    const { model: id, input, encoding_format } = req.body;
    const model = await textModel(registry, id);
    const inputs = Array.isArray(input) ? input : [input];
    const { vectors, promptTokens } = await model.embed(inputs, abortOnDisconnect(reply).signal);
    return {
      model: id,
      data: vectors.map((v, index) => ({ embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });
};
