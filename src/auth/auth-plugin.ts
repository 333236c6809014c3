import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { InfernoError } from "../errors/catalogue.js";
import { actorOf } from "../audit/audit-log.js";
import type { Principal } from "./principal.js";
import type { Awaitable } from "./stores.js";

/**
 * What the plugin needs to check a bearer credential; the API-key store and the JWT issuer provide it.
 * Answers come at once from SQLite or a cache, later from Redis; an unreachable Redis throws the coded 503.
 */
export interface CredentialCheckers {
  verifyApiKey(key: string): Awaitable<Principal | undefined>;
  verifyJwt(token: string): Awaitable<Principal | undefined>;
}

export interface AuthPluginOptions extends CredentialCheckers {
  enabled: boolean;
  /** Serve GET /metrics without credentials. */
  metricsPublic: boolean;
  /** CORS is on: a browser's preflight, which never carries credentials, gets its CORS answer without them. */
  cors: boolean;
}

/** When auth is off (loopback by default) every request acts as this principal. */
export const ANONYMOUS: Principal = Object.freeze({ user: "anonymous", role: "admin", via: "anonymous" }) as Principal;

/**
 * The only routes reachable without credentials when auth is on, as "METHOD /route-pattern". Every other
 * route, including any added later and the not-found handler, needs a valid credential: deny by default.
 */
const PUBLIC_ROUTES = [
  "GET /health",
  "GET /health/live",
  "GET /health/ready",
  "GET /v2/health/live",
  "GET /v2/health/ready",
  "POST /auth/login",
  // The WebSocket API authenticates with its first message (browsers cannot set headers on an upgrade),
  // so the upgrade itself gets through; the socket enforces auth before anything else (src/transports/api/websocket.ts).
  "GET /ws",
  // The API's own description (src/openapi): the document, and the page that renders it with its assets.
  // GET only (HEAD and OPTIONS follow, as below); the UI's copy of the document is /docs/json and /docs/yaml.
  "GET /openapi.json",
  "GET /docs",
  "GET /docs/",
  "GET /docs/json",
  "GET /docs/yaml",
  "GET /docs/static/*",
  "GET /docs/static/index.html",
  "GET /docs/static/swagger-initializer.js",
  // The web console's page and its static files (src/transports/console): files only, no data; every
  // API call the page makes carries the user's own key and is checked like any other.
  "GET /",
  "GET /console/*",
];

const API_KEY_PREFIX = "inf_";

/**
 * A CORS preflight as the Fetch standard defines it: OPTIONS with Origin and Access-Control-Request-Method.
 * A plain OPTIONS (no such headers) is an ordinary request, checked like any other.
 */
export function isCorsPreflight(request: FastifyRequest): boolean {
  return request.method === "OPTIONS" && typeof request.headers.origin === "string" && typeof request.headers["access-control-request-method"] === "string";
}

/** `Allow` of a public path: HEAD wherever GET is, OPTIONS everywhere. */
function allowedMethods(routes: string[], url: string): string {
  const methods = routes.filter((r) => r.endsWith(` ${url}`)).map((r) => r.slice(0, r.indexOf(" ")));
  return [...new Set(methods.flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m]))), "OPTIONS"].join(", ");
}

/** The principal a bearer credential (API key or JWT) stands for, or undefined when it is not valid. */
export function authenticateToken(token: string, checkers: CredentialCheckers): Awaitable<Principal | undefined> {
  return token.startsWith(API_KEY_PREFIX) ? checkers.verifyApiKey(token) : checkers.verifyJwt(token);
}

/** The token of an `Authorization: Bearer ...` header. */
export function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

const openRoutes = (metricsPublic: boolean) => [...PUBLIC_ROUTES, ...(metricsPublic ? ["GET /metrics"] : [])];
const pathsOf = (routes: string[]) => [...new Set(routes.map((r) => r.slice(r.indexOf(" ") + 1)))];

/**
 * Every "METHOD /route-pattern" reachable without credentials. HEAD and OPTIONS of a public path are
 * public too: load balancers probe with HEAD, and OPTIONS asks only which methods a path has.
 */
export function publicRouteSet(metricsPublic: boolean): ReadonlySet<string> {
  const open = openRoutes(metricsPublic);
  return new Set([...open, ...pathsOf(open).map((url) => `OPTIONS ${url}`)]);
}

async function authPlugin(app: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  const open = openRoutes(opts.metricsPublic);
  const publicRoutes = publicRouteSet(opts.metricsPublic);
  // Fastify answers HEAD with the GET handler; OPTIONS of a public path is answered here.
  for (const url of pathsOf(open)) {
    const allow = allowedMethods(open, url);
    app.options(url, async (_request, reply) => reply.code(204).header("allow", allow).send());
  }
  const target = (request: FastifyRequest) => `${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]!.slice(0, 200)}`;
  const authFailed = (request: FastifyRequest, reason: string, message: string, token: string | undefined) => {
    (app as { metrics?: { authFailures?: { inc(labels: Record<string, string>): void } } }).metrics?.authFailures?.inc({ reason });
    request.log.info({ reason }, "authentication failed");
    app.audit.failure({ type: "auth.failure", transport: "http", source: request.ip, reason, token, target: target(request) });
    return new InfernoError("AUTHENTICATION_FAILED", message, { reason });
  };

  app.addHook("onRequest", async (request, reply) => {
    if (!opts.enabled) {
      request.principal = ANONYMOUS;
      return;
    }
    // A HEAD request runs its GET route's handler, so it is exactly as public as that GET.
    const method = request.method === "HEAD" ? "GET" : request.method;
    const route = `${method} ${request.routeOptions.url ?? ""}`;
    const token = bearer(request);
    const isPublic = publicRoutes.has(route);
    let principal: Principal | undefined;
    try {
      principal = token ? await authenticateToken(token, opts) : undefined;
    } catch (err) {
      // The credential store is unreachable (Redis down: the coded 503): a public route still answers.
      if (!isPublic) throw err;
    }
    if (principal) request.principal = principal;
    if (isPublic) return;
    // @fastify/cors answers a preflight in its own onRequest hook, before this one; should one still get
    // here, it reaches no handler but an OPTIONS route, so it can do nothing beyond the CORS answer.
    if (opts.cors && isCorsPreflight(request)) return;
    if (!principal) {
      reply.header("www-authenticate", 'Bearer realm="inferno"');
      throw token
        ? authFailed(request, "invalid_credentials", "the API key or token is invalid, expired or revoked", token)
        : authFailed(request, "missing_credentials", "this route needs 'Authorization: Bearer <API key or JWT>'", undefined);
    }
    const needed = request.routeOptions.config?.role ?? "user";
    if (needed === "admin" && principal.role !== "admin") {
      app.audit.failure({ type: "auth.denied", transport: "http", source: request.ip, reason: "role", actor: actorOf(principal), target: target(request) });
      throw new InfernoError("AUTHORIZATION_FAILED", `this route needs the admin role; '${principal.user}' has '${principal.role}'`, {
        required_role: needed,
      });
    }
  });
}

/** Deny-by-default authentication (API keys and JWTs) and role checks, as one onRequest hook. */
export default fp(authPlugin, { name: "inferno-auth", fastify: "5.x", dependencies: ["inferno-audit"] });
