// Tool calls of a transport in the server's own process (`inferno mcp` on stdio): no HTTP request to carry
// the hooks, so each call goes through the call scope as a gRPC or IPC call does (auth, drain, rate limits,
// time limit, metrics, traces). With auth on, an API key or JWT given to the command is checked on every
// call; without one the caller is the local operator, who already holds the data dir (as `inferno security`).
import type { FastifyInstance } from "fastify";
import { ANONYMOUS, authenticateToken } from "../../auth/auth-plugin.js";
import type { Principal } from "../../auth/principal.js";
import { InfernoError } from "../../errors/catalogue.js";
import { principalKey } from "../../limits/rate-limit.js";
import { CallScope, scopeContext, type CallSource, type TransportOptions } from "../call-scope.js";
import type { McpCaller, McpExtra } from "./mcp-server.js";

const PEER = "stdio";

export async function inProcessCaller(app: FastifyInstance, opts: TransportOptions, token: string | undefined): Promise<McpCaller> {
  const checked = opts.auth.enabled && token !== undefined;
  let principal: Principal = ANONYMOUS;
  if (checked) {
    const found = await authenticateToken(token, opts.auth.checkers);
    if (!found) throw new InfernoError("AUTHENTICATION_FAILED", "the API key or token is invalid, expired or revoked", { reason: "invalid_credentials" });
    principal = found;
  }
  const ctx = scopeContext(app, { ...opts, auth: { enabled: checked, checkers: opts.auth.checkers } });
  const source = (route: string, extra: McpExtra): CallSource => ({
    transport: "mcp",
    route,
    token,
    peer: PEER,
    deadlineAt: Infinity,
    traceparent: undefined,
    onGone(listener) {
      extra.signal.addEventListener("abort", listener, { once: true });
      return () => extra.signal.removeEventListener("abort", listener);
    },
    statusOf: (code) => code,
    credentialHint: "an API key (--api-key or INFERNO_API_KEY)",
  });
  return {
    principal: () => principal,
    async run(tool, extra, work) {
      const scope = await CallScope.open(ctx, source(`tools/call ${tool.name}`, extra), tool.role);
      try {
        const result = await scope.limited(() => work({
          principal: scope.principal,
          usageKey: principalKey(scope.principal, PEER),
          signal: scope.signal,
          audit: (type, target, details) => scope.audit(type, target, details),
        }));
        scope.end();
        return result;
      } catch (err) {
        const failure = scope.failure(err);
        scope.end(failure);
        throw failure;
      }
    },
  };
}
