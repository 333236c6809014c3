import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { InfernoError } from "../errors/catalogue.js";
import type { Principal } from "./principal.js";

/** What the plugin needs to check a bearer credential; the API-key store and the JWT issuer provide it. */
export interface CredentialCheckers {
  verifyApiKey(key: string): Principal | undefined;
  verifyJwt(token: string): Principal | undefined;
}

export interface AuthPluginOptions extends CredentialCheckers {
  enabled: boolean;
  /** Serve GET /metrics without credentials. */
  metricsPublic: boolean;
}

/** When auth is off (loopback by default) every request acts as this principal. */
export const ANONYMOUS: Principal = Object.freeze({ user: "anonymous", role: "admin", via: "anonymous" }) as Principal;

/**
 * The only routes reachable without credentials when auth is on, as "METHOD /route-pattern". Every other
 * route, including any added later and the not-found handler, needs a valid credential: deny by default.
 */
const PUBLIC_ROUTES = [
  "GET /health",
  "GET /v2/health/live",
  "GET /v2/health/ready",
  "POST /auth/login",
  // The WebSocket API authenticates with its first message (browsers cannot set headers on an upgrade),
  // so the upgrade itself gets through; the socket enforces auth before anything else (src/routes/websocket.ts).
  "GET /ws",
];

const API_KEY_PREFIX = "inf_";

/** The principal a bearer credential (API key or JWT) stands for, or undefined when it is not valid. */
export function authenticateToken(token: string, checkers: CredentialCheckers): Principal | undefined {
  return token.startsWith(API_KEY_PREFIX) ? checkers.verifyApiKey(token) : checkers.verifyJwt(token);
}

/** The token of an `Authorization: Bearer ...` header. */
export function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

async function authPlugin(app: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  const publicRoutes = new Set([...PUBLIC_ROUTES, ...(opts.metricsPublic ? ["GET /metrics"] : [])]);
  const authFailed = (request: FastifyRequest, reason: string, message: string) => {
    (app as { metrics?: { authFailures?: { inc(labels: Record<string, string>): void } } }).metrics?.authFailures?.inc({ reason });
    request.log.info({ reason }, "authentication failed");
    return new InfernoError("AUTHENTICATION_FAILED", message, { reason });
  };

  app.addHook("onRequest", async (request, reply) => {
    if (!opts.enabled) {
      request.principal = ANONYMOUS;
      return;
    }
    const route = `${request.method} ${request.routeOptions.url ?? ""}`;
    const token = bearer(request);
    const principal = token ? authenticateToken(token, opts) : undefined;
    if (principal) request.principal = principal;
    if (publicRoutes.has(route)) return;
    if (!principal) {
      reply.header("www-authenticate", 'Bearer realm="inferno"');
      throw token
        ? authFailed(request, "invalid_credentials", "the API key or token is invalid, expired or revoked")
        : authFailed(request, "missing_credentials", "this route needs 'Authorization: Bearer <API key or JWT>'");
    }
    const needed = request.routeOptions.config?.role ?? "user";
    if (needed === "admin" && principal.role !== "admin") {
      throw new InfernoError("AUTHORIZATION_FAILED", `this route needs the admin role; '${principal.user}' has '${principal.role}'`, {
        required_role: needed,
      });
    }
  });
}

/** Deny-by-default authentication (API keys and JWTs) and role checks, as one onRequest hook. */
export default fp(authPlugin, { name: "inferno-auth", fastify: "5.x" });
