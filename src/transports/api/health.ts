import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { VERSION } from "../../version.js";

export const healthRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; startedAt: number }> = async (app, { registry, startedAt }) => {
  // Public when auth is on, so a request without a valid credential (a load balancer's probe) gets the
  // status alone: the version, the model count and the memory budget would tell an outsider what runs here
  // and how close it is to full. The auth hook sets a principal for a valid credential, and for everyone
  // when auth is off.
  app.get("/health", async (request) => {
    if (!request.principal) return { status: "healthy" };
    return {
      status: "healthy",
      version: VERSION,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      models_loaded: registry.loadedModels().length,
      memory: registry.memoryStatus(),
    };
  });
};
