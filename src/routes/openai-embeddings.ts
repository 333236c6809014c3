import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { InfernoError } from "../errors/catalogue.js";
import { abortOnDisconnect } from "../http/sse.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { textModel } from "../scheduler/text-generation.js";
import { embeddingToBase64 } from "./embeddings.js";

const MAX_INPUTS = 2048;
const text = z.string().min(1, "input must not be an empty string").max(1_000_000);
const tokenIds = z.array(z.number().int().min(0)).min(1).max(1_000_000);

const embeddingsBody = z.object({
  model: z.string().min(1).max(256),
  input: z.union([text, z.array(text).min(1).max(MAX_INPUTS), tokenIds, z.array(tokenIds).min(1).max(MAX_INPUTS)], {
    error: "input must be a string, an array of strings, an array of token ids or an array of token-id arrays, none empty",
  }),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().max(256).nullish(),
});

/** A string and a token-id array are one input each. */
function inputsOf(input: z.infer<typeof embeddingsBody>["input"]): Array<string | number[]> {
  if (typeof input === "string") return [input];
  if (typeof input[0] === "number") return [input as number[]];
  return input as Array<string | number[]>;
}

export const openaiEmbeddingRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.post("/v1/embeddings", { schema: { body: embeddingsBody }, config: { dialect: "openai" } }, async (req, reply) => {
    const { model: id, input, encoding_format, dimensions } = req.body;
    const model = await textModel(registry, id);
    const size = model.embeddingSize;
    if (dimensions != null && dimensions !== size) {
      throw new InfernoError("INVALID_REQUEST", `dimensions must be ${size} for model '${id}' (embeddings cannot be shortened)`, undefined, {
        param: "dimensions",
      });
    }
    const { vectors, promptTokens } = await model.embed(inputsOf(input), abortOnDisconnect(reply).signal);
    return {
      object: "list",
      data: vectors.map((v, index) => ({ object: "embedding", embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index })),
      model: id,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });
};
