import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { JwtIssuer } from "../../auth/jwt.js";
import type { ApiKeys, Users } from "../../auth/stores.js";
import { parseKeepAlive } from "../../core/duration.js";
import { InfernoError } from "../../errors/catalogue.js";

const admin = { role: "admin" as const };
const limitsSchema = z
  .object({
    requestsPerMinute: z.number().int().min(1),
    requestsPerHour: z.number().int().min(1),
    tokensPerMinute: z.number().int().min(1),
    concurrentRequests: z.number().int().min(1),
  })
  .partial()
  .strict();

const createKeyBody = z
  .object({
    user: z.string().min(1).max(128),
    name: z.string().min(1).max(128),
    role: z.enum(["admin", "user"]).default("user"),
    /** Seconds or a duration ("30m", "720h"); the key never expires without it. */
    expires_in: z.union([z.number().positive(), z.string().max(32)]).optional(),
    limits: limitsSchema.optional(),
  })
  .strict();

/** Login for JWTs, and API-key management for admins (the same operations as `inferno security api-key`). */
export const authRoutes: FastifyPluginAsyncZod<{ keys: ApiKeys; users: Users; jwt: JwtIssuer }> = async (app, { keys, users, jwt }) => {
  app.post(
    "/auth/login",
    { schema: { body: z.object({ username: z.string().min(1).max(128), password: z.string().min(1).max(1024) }) } },
    async (req) => {
      const principal = await users.verify(req.body.username, req.body.password);
      if (!principal) {
        app.audit.failure({ type: "auth.failure", transport: "http", source: req.ip, reason: "wrong_password", username: req.body.username, target: "POST /auth/login" });
        throw new InfernoError("AUTHENTICATION_FAILED", "wrong username or password", { reason: "invalid_credentials" });
      }
      return { ...jwt.sign(principal), token_type: "Bearer" };
    },
  );

  app.get("/auth/api-keys", { config: admin }, async () => ({ api_keys: await keys.list() }));

  app.post("/auth/api-keys", { schema: { body: createKeyBody }, config: admin }, async (req, reply) => {
    const { expires_in, ...rest } = req.body;
    const expiresInMs = expires_in === undefined ? undefined : parseKeepAlive(expires_in);
    if (expiresInMs === null || (expires_in !== undefined && !expiresInMs)) {
      throw new InfernoError("INVALID_REQUEST", "expires_in must be a positive duration (seconds, or e.g. 30m, 720h)", undefined, { param: "expires_in" });
    }
    const created = await keys.create({ ...rest, ...(expiresInMs ? { expiresInMs } : {}) });
    req.audit("key.create", created.id, { user: created.user, name: created.name, role: created.role, expires_at: created.expires_at });
    return reply.code(201).send(created);
  });

  app.delete("/auth/api-keys/:id", { schema: { params: z.object({ id: z.string().min(1).max(64) }) }, config: admin }, async (req) => {
    const revoked = await keys.revoke(req.params.id);
    if (!revoked) throw new InfernoError("NOT_FOUND", `no API key with id '${req.params.id}'`, { id: req.params.id });
    req.audit("key.revoke", revoked.id, { user: revoked.user, name: revoked.name });
    return { id: revoked.id, revoked: true, revoked_at: revoked.revoked_at };
  });
};
