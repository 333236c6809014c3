import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ModelEntry, ModelRegistry } from "../../registry/model-registry.js";
import { modelIdParams } from "../../http/params.js";

export const openaiModelRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry }> = async (app, { registry }) => {
  /** OpenAI's model object (`created`: the file's or registration's time in seconds), plus what the model can do. */
  const modelObject = async (m: ModelEntry) => ({
    id: m.id,
    object: "model",
    created: m.created,
    owned_by: "inferno",
    capabilities: (await registry.capabilities(m).catch(() => undefined))?.capabilities ?? [],
  });

  // Only what can be served: a registration whose file is missing is on the native GET /models alone.
  app.get("/models", { config: { dialect: "openai" } }, async () => {
    await registry.scan();
    return { object: "list", data: await Promise.all(registry.list().filter((m) => !m.missing).map(modelObject)) };
  });

  app.get(
    "/models/:id",
    { schema: { params: modelIdParams }, config: { dialect: "openai" } },
    async (req) => modelObject(await registry.get(req.params.id)),
  );
};
