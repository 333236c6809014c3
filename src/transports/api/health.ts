import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { SharedRedis } from "../../shared/redis.js";
import { VERSION } from "../../version.js";

export interface HealthOptions {
  registry: ModelRegistry;
  startedAt: number;
  /** The Redis shared with other replicas (config redisUrl): readiness needs it connected. */
  redis?: SharedRedis | undefined;
}

// Probes answer during a drain too (the shutdown plugin lets them through): readiness says why it is false.
const probe = { probe: true } as const;

export const healthRoutes: FastifyPluginAsyncZod<HealthOptions> = async (app, { registry, startedAt, redis }) => {
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

  // Liveness: the process answers (a dead event loop answers nothing). Never depends on Redis or models,
  // so an orchestrator does not restart a replica for what a restart cannot fix.
  app.get("/health/live", { config: probe }, async () => ({ status: "alive" }));

  // Readiness: whether a load balancer should send this replica traffic. The registry is initialised
  // before any route is served, so what can change is the drain and, with redisUrl, the Redis connection.
  app.get("/health/ready", { config: probe }, async (_request, reply) => {
    const checks = {
      draining: app.drainSignal.aborted,
      redis: redis === undefined ? "not_configured" : redis.ready ? "ready" : "unavailable",
      registry: "ready",
    };
    const notReady = [...(checks.draining ? ["draining"] : []), ...(checks.redis === "unavailable" ? ["redis"] : [])];
    if (notReady.length === 0) return { status: "ready", checks };
    return reply.code(503).send({ status: "not_ready", not_ready: notReady, checks });
  });
};
