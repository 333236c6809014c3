import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ModelRegistry } from "../registry/model-registry.js";
import { VERSION } from "../version.js";

export const healthRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; startedAt: number }> = async (app, { registry, startedAt }) => {
  app.get("/health", async () => ({
    status: "healthy",
    version: VERSION,
    uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
    models_loaded: registry.loadedModels().length,
    memory: registry.memoryStatus(),
  }));
};
