// One log line per HTTP request, at info: method, route, status, duration, and the model and tokens of
// the generations it ran. Fastify's own two lines per request (incoming, completed) are turned off in
// server.ts; health probes, the metrics scrape and the console's files log at debug so that a load
// balancer polling every few seconds does not bury the requests that matter.
import { AsyncLocalStorage } from "node:async_hooks";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { ModelRegistry } from "../registry/model-registry.js";

interface RequestTally {
  model?: string;
  promptTokens: number;
  completionTokens: number;
}

const QUIET_ROUTES = new Set(["/health", "/v2/health/live", "/v2/health/ready", "/metrics", "/metrics/summary", "/console/*"]);
const CLIENT_CLOSED = 499;
const errorCodes = new WeakMap<FastifyRequest, string>();

/** The error handler notes the catalogue code of a refused request here, so its one line names it. */
export function noteErrorCode(request: FastifyRequest, code: string): void {
  errorCodes.set(request, code);
}

/** The catalogue code noted for a request, if it was refused or its stream failed (the traces read it too). */
export const errorCodeOf = (request: FastifyRequest): string | undefined => errorCodes.get(request);

/** Whether a request's line is logged at debug rather than info (probes, scrapes, static files). */
export function isQuietRoute(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  if (route === undefined) return false;
  return QUIET_ROUTES.has(route) || route.startsWith("/docs/static/") || request.routeOptions.config?.quietLog === true;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Log this route's requests at debug (static files, probes). */
    quietLog?: boolean;
  }
}

async function requestLog(app: FastifyInstance, opts: { registry: ModelRegistry }): Promise<void> {
  const tallies = new AsyncLocalStorage<RequestTally>();
  const talliesByRequest = new WeakMap<FastifyRequest, RequestTally>();
  const unobserve = opts.registry.observe((event) => {
    if (event.kind !== "generation") return;
    const tally = tallies.getStore();
    if (!tally) return;
    tally.model = event.model;
    tally.promptTokens += event.result.promptTokens;
    tally.completionTokens += event.result.completionTokens;
  });
  app.addHook("onClose", async () => unobserve());

  app.addHook("onRequest", (request, reply, done) => {
    const tally: RequestTally = { promptTokens: 0, completionTokens: 0 };
    // The raw response closes exactly once whether Fastify sent it, a stream hijacked it or the client left.
    reply.raw.once("close", () => {
      const route = request.routeOptions.url ?? "unmatched";
      const status = reply.raw.writableFinished ? reply.raw.statusCode : CLIENT_CLOSED;
      const ms = Math.round(reply.elapsedTime * 10) / 10;
      const code = errorCodes.get(request);
      const tokens = tally.promptTokens + tally.completionTokens > 0 ? ` ${tally.promptTokens}+${tally.completionTokens} tokens` : "";
      const http = {
        method: request.method, route, status, ms,
        ...(tally.model ? { model: tally.model, prompt_tokens: tally.promptTokens, completion_tokens: tally.completionTokens } : {}),
        ...(code ? { code } : {}),
      };
      const line = `${request.method} ${request.url} ${status}${code ? ` ${code}` : ""} ${ms} ms${tally.model ? ` ${tally.model}` : ""}${tokens}`;
      if (status < 400 && isQuietRoute(request)) request.log.debug({ http }, line);
      else request.log.info({ http }, line);
    });
    talliesByRequest.set(request, tally);
    done();
  });
  // After the body is read: the handler's async context starts here (as in webhooks.ts).
  app.addHook("preHandler", (request, _reply, done) => {
    const tally = talliesByRequest.get(request);
    if (tally) tallies.run(tally, done);
    else done();
  });
}

/** One info line per request (see the file comment); `http` holds the line's fields for JSON logs. */
export const requestLogPlugin = fp(requestLog, { name: "inferno-request-log", fastify: "5.x" });
