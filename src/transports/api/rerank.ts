import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { createRerank, rerankBody } from "../../dialects/rerank.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";

/** `/v1/rerank` and `/v1/reranking` (llama-server's alias), under the OpenAI family's prefix and error envelope. */
export const openaiRerankRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  for (const url of ["/rerank", "/reranking"]) {
    app.post(url, { schema: { body: rerankBody }, config: { dialect: "openai" } }, async (req, reply) =>
      createRerank(registry, req.body, abortOnDisconnect(reply).signal),
    );
  }
};

/** The native `/rerank`: the same body and answer, errors in the native envelope. */
export const rerankRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.post("/rerank", { schema: { body: rerankBody } }, async (req, reply) => createRerank(registry, req.body, abortOnDisconnect(reply).signal));
};
