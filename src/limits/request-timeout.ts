import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { InfernoError, isInfernoError } from "../errors/catalogue.js";
import { dialectOf, errorBody, sendError } from "../errors/error-handler.js";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * Aborts when the client leaves before the response is complete, or, with a TIMEOUT InfernoError as
     * its reason, when the request outlives its time limit. `abortOnDisconnect` follows it.
     */
    abortSignal?: AbortSignal;
    /**
     * Aborts `abortSignal` with a coded reason (TIMEOUT, or SERVICE_UNAVAILABLE when the server shuts
     * down): the generation stops, a stream ends with that error event, a non-streamed answer becomes it.
     */
    abortWith?: (err: InfernoError) => void;
  }
  interface FastifyContextConfig {
    /** false: the route has no time limit (a model download may take hours); a disconnect or a drain still ends it. */
    timeLimit?: false;
  }
}

export interface RequestTimeoutOptions {
  /** The time limit of a request, streams included (config `requestTimeoutMs`). */
  timeoutMs: number;
  /** How long work that ignores the abort (a model still loading) may hold a non-streamed answer after the limit. */
  graceMs?: number;
}

/**
 * Not Fastify's `handlerTimeout`: that one stops at `reply.hijack()` (our streams) and answers with an
 * uncoded 503. Here the limit aborts the request's signal with a TIMEOUT error, and then:
 * - a generation stops at its next token and its route returns; the `onSend` hook below turns that late
 *   answer into 504 TIMEOUT in the route's dialect (a queued request is refused with the same error);
 *   `request.abortWith` does the same for any coded reason (the shutdown drain ends requests with it);
 * - a stream (hijacked) ends with its dialect's error event, written by the stream writer (src/http/sse.ts);
 * - work that ignores the signal is answered for, `graceMs` later.
 */
async function requestTimeout(app: FastifyInstance, opts: RequestTimeoutOptions): Promise<void> {
  const graceMs = opts.graceMs ?? 1000;
  app.decorateRequest("abortSignal", undefined);
  app.decorateRequest("abortWith", undefined);

  app.addHook("onRequest", (request, reply, done) => {
    const controller = new AbortController();
    request.abortSignal = controller.signal;
    const res = reply.raw;
    let fallback: NodeJS.Timeout | undefined;
    request.abortWith = (err) => {
      if (controller.signal.aborted) return;
      controller.abort(err);
      if (reply.sent) return;
      fallback = setTimeout(() => {
        if (!reply.sent && !res.headersSent) sendError(request, reply, err);
      }, graceMs);
    };
    const expire = () => {
      request.log.warn({ timeout_ms: opts.timeoutMs }, "request timed out");
      request.abortWith!(new InfernoError("TIMEOUT", `the request did not complete within ${opts.timeoutMs} ms`, { timeout_ms: opts.timeoutMs }));
    };
    // A WebSocket lives as long as its client uses it: the limit is for HTTP requests.
    const unlimited = request.headers.upgrade?.toLowerCase() === "websocket" || request.routeOptions.config?.timeLimit === false;
    const timer = unlimited ? undefined : setTimeout(expire, opts.timeoutMs);
    // 'close' comes once for every response: sent, hijacked, or cut short by the client.
    res.once("close", () => {
      clearTimeout(timer);
      clearTimeout(fallback);
      if (!res.writableFinished) controller.abort(new Error("client disconnected"));
    });
    done();
  });

  app.addHook("onSend", async (request, reply, payload) => {
    const reason = request.abortSignal?.reason;
    if (!isInfernoError(reason) || reply.statusCode >= 400) return payload;
    reply.code(reason.status).type("application/json");
    return JSON.stringify(errorBody(reason, dialectOf(request), request.id));
  });
}

/** The per-request time limit (TIMEOUT) and the request's abort signal, which a disconnect also fires. */
export const requestTimeoutPlugin = fp(requestTimeout, { name: "inferno-request-timeout", fastify: "5.x" });
