import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ModelEntry, ModelRegistry } from "../registry/model-registry.js";

/** A model as OpenAI's model object: `created` is the file's (or registration's) time in seconds. */
const modelObject = (m: ModelEntry) => ({ id: m.id, object: "model", created: m.created, owned_by: "inferno" });

export const openaiModelRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.get("/v1/models", { config: { dialect: "openai" } }, async () => {
    await registry.scan();
    return { object: "list", data: registry.list().map(modelObject) };
  });

  app.get(
    "/v1/models/:id",
    { schema: { params: z.object({ id: z.string().min(1).max(256) }) }, config: { dialect: "openai" } },
    async (req) => modelObject(await registry.get(req.params.id)),
  );
};
