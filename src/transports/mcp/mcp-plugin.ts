// MCP on the Streamable HTTP transport at /mcp (POST messages, GET the server's stream, DELETE the session),
// and `app.mcp.connect()` for a transport in the same process (`inferno mcp` on stdio). The routes go
// through the app's hooks like any other, so the bearer credential, roles, rate limits, the time limit,
// metrics, traces and the drain apply to every message; the tools call the same services as the routes.
import { randomUUID } from "node:crypto";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { Gauge } from "prom-client";
import { z } from "zod";
import { actorOf, type AuditType } from "../../audit/audit-log.js";
import { ANONYMOUS, bearer } from "../../auth/auth-plugin.js";
import type { Principal } from "../../auth/principal.js";
import { InfernoError } from "../../errors/catalogue.js";
import { limitKey } from "../../limits/rate-limit.js";
import type { BatchDeps } from "../../services/batches.js";
import type { TransportOptions } from "../call-scope.js";
import { inProcessCaller } from "./in-process.js";
import { createMcpServer, type McpCaller, type McpExtra } from "./mcp-server.js";
import { McpSessions, type McpSession, type McpSessionSettings } from "./sessions.js";
import { mcpTools } from "./tools.js";

declare module "fastify" {
  interface FastifyInstance {
    mcp: {
      /** Serves the MCP tools on `transport` in this process, as the principal of `token` (or the local operator without one). */
      connect(transport: Transport, opts?: { token?: string | undefined }): Promise<void>;
      /** Live Streamable HTTP sessions. */
      sessions(): number;
    };
  }
}

export interface McpPluginOptions extends TransportOptions, McpSessionSettings {
  batches: BatchDeps | undefined;
  /** The browser origins (config corsOrigins) whose pages may call /mcp; a request with any other Origin is refused. */
  allowedOrigins: readonly string[];
}

/** What the HTTP request carrying a message tells its tool call (through the SDK's per-message authInfo). */
interface HttpContext {
  principal: Principal;
  usageKey: string;
  signal: AbortSignal;
  audit(type: AuditType, target?: string, details?: Record<string, unknown>): void;
}

const jsonRpcMessage = z.looseObject({
  jsonrpc: z.literal("2.0"),
  id: z.union([z.string().max(256), z.number().int()]).optional(),
  method: z.string().min(1).max(256).optional(),
});
const mcpHeaders = z.looseObject({ "mcp-session-id": z.string().min(1).max(128).optional() });
const mcpBody = z.union([jsonRpcMessage, z.array(jsonRpcMessage).min(1).max(64)]);

const isInitialize = (body: unknown) => (Array.isArray(body) ? body : [body]).some((m) => (m as { method?: unknown }).method === "initialize");
const ownerOf = (request: FastifyRequest) => (request.principal ?? ANONYMOUS).user;

function httpContext(extra: McpExtra): HttpContext {
  const ctx = extra.authInfo?.extra?.inferno as HttpContext | undefined;
  if (!ctx) throw new InfernoError("AUTHENTICATION_FAILED", "the message came without the request's credential");
  return ctx;
}

/** Tool calls of an HTTP session: the request's principal and signal; a cancelled call's stream is ended (the SDK sends no answer to it). */
function httpCaller(session: () => McpSession): McpCaller {
  return {
    principal: (extra) => httpContext(extra).principal,
    async run(_tool, extra, work) {
      const { principal, usageKey, signal, audit } = httpContext(extra);
      try {
        return await work({ principal, usageKey, signal: AbortSignal.any([extra.signal, signal]), audit });
      } finally {
        if (extra.signal.aborted) session().transport.closeSSEStream(extra.requestId);
      }
    },
  };
}

async function mcpTransport(app: FastifyInstance, opts: McpPluginOptions): Promise<void> {
  const tools = mcpTools({ registry: opts.registry, limits: opts.limits, batches: opts.batches });
  const sessions = new McpSessions(opts, app.log.child({ component: "mcp" }));
  new Gauge({ name: "inferno_mcp_sessions", help: "Live MCP sessions on the Streamable HTTP transport (/mcp)", registers: [app.metrics.registry], collect() {
    this.set(sessions.size);
  } });
  app.drainSignal.addEventListener("abort", () => sessions.drain(), { once: true });
  // Servers of in-process transports (stdio), closed with the app.
  const local = new Set<Server>();
  app.addHook("preClose", async () => {
    await Promise.all([sessions.closeAll(), ...[...local].map((s) => s.close())]);
  });

  /** A new session for the initialize request; live once the transport accepted it. */
  async function open(owner: string): Promise<{ session: McpSession; release: () => void }> {
    const release = sessions.reserve();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        release();
        session.id = id;
        sessions.add(session as McpSession & { id: string });
      },
    });
    const session: McpSession = { id: undefined, owner, transport, server: createMcpServer({ tools, registry: opts.registry, caller: httpCaller(() => session) }) };
    try {
      await session.server.connect(transport);
    } catch (err) {
      release();
      throw err;
    }
    transport.onerror = (err) => app.log.debug({ err }, "MCP transport error");
    return { session, release };
  }

  /** The session a request names, or the coded refusal (a session of another user is not found either). */
  function named(request: FastifyRequest, id: string | undefined): McpSession {
    if (id === undefined) throw new InfernoError("INVALID_REQUEST", "this request needs the Mcp-Session-Id header of an open session (start one with initialize)", undefined, { param: "mcp-session-id" });
    const session = sessions.find(id, ownerOf(request));
    if (!session) throw new InfernoError("NOT_FOUND", `MCP session '${id}' not found: it expired or was closed; start a new one with initialize`, { session: id });
    return session;
  }

  /** Hands the request to the SDK's transport, with the headers the hooks set and the request's context for the tools. */
  async function handOver(request: FastifyRequest, reply: FastifyReply, session: McpSession, body?: unknown) {
    const principal = request.principal ?? ANONYMOUS;
    const context: HttpContext = {
      principal,
      usageKey: limitKey(request),
      signal: request.abortSignal ?? new AbortController().signal,
      audit: (type, target, details) =>
        app.audit.record({ type, ...actorOf(principal), transport: "mcp", source: request.ip, target, ...(details ? { details } : {}) }),
    };
    Object.assign(request.raw, { auth: { token: bearer(request) ?? "", clientId: principal.user, scopes: [principal.role], extra: { inferno: context } } });
    reply.hijack();
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value as string);
    await session.transport.handleRequest(request.raw, reply.raw, body);
  }

  const route = { role: "user" as const };
  const typed = app.withTypeProvider<ZodTypeProvider>();

  // DNS rebinding (MCP's transport rules): a page of any site can reach a server on localhost once its name
  // resolves there, and to the browser that is same-origin. Agents send no Origin; a browser always does on a
  // POST, so only the origins listed in corsOrigins get through. With auth off nothing else would stop it.
  const allowed = new Set(opts.allowedOrigins);
  app.addHook("onRequest", async (request) => {
    if (request.url.split("?")[0] !== "/mcp") return;
    const origin = request.headers.origin;
    if (origin !== undefined && !allowed.has(origin)) {
      throw new InfernoError("AUTHORIZATION_FAILED", `MCP requests from the origin '${String(origin).slice(0, 200)}' are refused; list it in corsOrigins to allow a browser page there`, {
        reason: "origin",
      });
    }
  });

  typed.post("/mcp", { schema: { headers: mcpHeaders, body: mcpBody }, config: route }, async (request, reply) => {
    const id = request.headers["mcp-session-id"];
    if (id === undefined && isInitialize(request.body)) {
      const { session, release } = await open(ownerOf(request));
      // An initialize that failed leaves a server nobody can reach: it is closed with its request.
      reply.raw.once("close", () => {
        release();
        if (session.id === undefined) void session.server.close();
      });
      await handOver(request, reply, session, request.body);
      return reply;
    }
    const session = named(request, id);
    reply.raw.once("close", sessions.begin(session.id!));
    await handOver(request, reply, session, request.body);
    return reply;
  });

  // The server's own stream (notifications outside a request): it lives as long as the client keeps it, so no time limit.
  typed.get("/mcp", { schema: { headers: mcpHeaders }, config: { ...route, timeLimit: false } }, async (request, reply) => {
    await handOver(request, reply, named(request, request.headers["mcp-session-id"]));
    return reply;
  });

  typed.delete("/mcp", { schema: { headers: mcpHeaders }, config: route }, async (request, reply) => {
    const session = named(request, request.headers["mcp-session-id"]);
    await handOver(request, reply, session);
    return reply;
  });

  app.decorate("mcp", {
    connect: async (transport: Transport, connectOpts: { token?: string | undefined } = {}) => {
      const caller = await inProcessCaller(app, opts, connectOpts.token);
      const server = createMcpServer({ tools, registry: opts.registry, caller });
      local.add(server);
      server.onclose = () => local.delete(server);
      await server.connect(transport);
    },
    sessions: () => sessions.size,
  });
}

/** MCP at /mcp (Streamable HTTP) and `app.mcp.connect` for stdio. */
export const mcpPlugin = fp(mcpTransport, { name: "inferno-mcp", fastify: "5.x", dependencies: ["inferno-shutdown"] });
