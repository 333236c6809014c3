import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { createRerank, rerankBody } from "../dialects/rerank.js";
import { abortOnDisconnect } from "../http/sse.js";
import type { ModelRegistry } from "../registry/model-registry.js";

/** `POST /v1/rerank` and `/v1/reranking` (llama-server's alias) answer in OpenAI's error envelope, `/rerank` in the native one. */
export const rerankRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  for (const url of ["/v1/rerank", "/v1/reranking"]) {
    app.post(url, { schema: { body: rerankBody }, config: { dialect: "openai" } }, async (req, reply) =>
      createRerank(registry, req.body, abortOnDisconnect(reply).signal),
    );
  }
  app.post("/rerank", { schema: { body: rerankBody } }, async (req, reply) => createRerank(registry, req.body, abortOnDisconnect(reply).signal));
};
