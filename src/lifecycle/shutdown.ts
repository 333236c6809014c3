import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { InfernoError } from "../errors/catalogue.js";

declare module "fastify" {
  interface FastifyInstance {
    /** Aborts when a drain begins: long-lived connections (WebSockets) take no new work and close once idle. */
    drainSignal: AbortSignal;
    /**
     * Graceful shutdown (see `shutdownPlugin`). A later call during the drain may shorten the grace
     * (0: end the open requests now); every call returns the same report.
     */
    drain(graceMs: number): Promise<DrainReport>;
    /**
     * Counts a call of a transport that is not a Fastify route (gRPC) as an open request until the
     * returned function is called: a drain waits for it and, when the grace runs out, ends it with `abortWith`.
     */
    trackCall(abortWith: (err: InfernoError) => void): () => void;
  }
  interface FastifyContextConfig {
    /** A health probe (/health/live, /health/ready): answered during a drain, and not waited for by it. */
    probe?: boolean;
  }
}

/** What a drain can end: a request (its abortWith comes from the request-timeout plugin) or another transport's call. */
interface OpenWork {
  abortWith?: ((err: InfernoError) => void) | undefined;
}

/** What a drain found and did. */
export interface DrainReport {
  /** Requests (streams and WebSockets included) open when the drain began. */
  openAtStart: number;
  /** Requests still open when the grace ran out, ended with SERVICE_UNAVAILABLE. */
  endedByGrace: number;
}

/** After the grace, how long ended requests get to write their last event before connections are cut. */
const END_WAIT_MS = 3000;
/** What a client refused during the drain is told to wait before retrying (another replica, or this one restarted). */
const RETRY_AFTER_S = 1;

export const shuttingDown = (details?: Record<string, unknown>) =>
  new InfernoError("SERVICE_UNAVAILABLE", "the server is shutting down", { reason: "shutting_down", ...details });

/**
 * `app.drain(graceMs)`, the graceful shutdown used on SIGTERM:
 * 1. the listening socket closes (new connections are refused) and idle keep-alive connections with it;
 *    a request that still arrives on an open connection gets 503 SERVICE_UNAVAILABLE with Retry-After
 *    and `Connection: close`, as does every answer finished during the drain;
 * 2. open requests and streams go on; as soon as none is left the app closes, without waiting for the grace;
 * 3. when the grace runs out, every open request's signal is aborted with SERVICE_UNAVAILABLE
 *    (`request.abortWith`), so a stream ends with its dialect's error event, a non-streamed request is
 *    answered with the 503 and a WebSocket sends an error for each inference and closes with 1001;
 * 4. `app.close()`: its preClose and onClose hooks stop the batch worker (running items go back to
 *    pending) and close the database.
 * Needs the request-timeout plugin (the request's signal) registered first.
 */
async function shutdown(app: FastifyInstance): Promise<void> {
  const open = new Set<FastifyRequest | OpenWork>();
  const draining = new AbortController();
  let onIdle: (() => void) | undefined;
  let drained: Promise<DrainReport> | undefined;
  let shorten: ((graceMs: number) => void) | undefined;
  app.decorate("drainSignal", draining.signal);

  app.addHook("onRequest", (request, reply, done) => {
    if (request.routeOptions.config?.probe === true) {
      done();
      return;
    }
    if (draining.signal.aborted) {
      reply.header("connection", "close");
      done(shuttingDown({ retry_after: RETRY_AFTER_S }));
      return;
    }
    open.add(request);
    // 'close' comes once for every response: sent, hijacked (a stream, a WebSocket's socket), or cut short.
    reply.raw.once("close", () => {
      open.delete(request);
      if (open.size === 0) onIdle?.();
    });
    done();
  });
  app.addHook("onSend", async (_request, reply, payload) => {
    if (draining.signal.aborted) reply.header("connection", "close");
    return payload;
  });

  /** Resolves true once no request is open, false when `ms` runs out first (a grace may be shortened). */
  const idleWithin = (ms: number, grace: boolean) =>
    new Promise<boolean>((resolve) => {
      if (open.size === 0) return resolve(true);
      let timer = setTimeout(() => resolve(false), ms);
      const deadline = Date.now() + ms;
      onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      if (grace) shorten = (graceMs) => {
        if (Date.now() + graceMs >= deadline) return;
        clearTimeout(timer);
        timer = setTimeout(() => resolve(false), graceMs);
      };
    }).finally(() => {
      onIdle = undefined;
      shorten = undefined;
    });

  async function run(graceMs: number): Promise<DrainReport> {
    const started = Date.now();
    draining.abort();
    // Node's server.close() also closes the idle keep-alive connections; busy ones close after their answer.
    if (app.server.listening) app.server.close();
    const openAtStart = open.size;
    app.log.info({ open_requests: openAtStart, grace_ms: graceMs }, "draining: new connections refused, open requests may finish");
    let endedByGrace = 0;
    if (!(await idleWithin(graceMs, true))) {
      endedByGrace = open.size;
      app.log.warn({ open_requests: endedByGrace }, "grace period over: ending the open requests with SERVICE_UNAVAILABLE");
      const err = shuttingDown();
      for (const request of open) request.abortWith?.(err);
      if (!(await idleWithin(END_WAIT_MS, false))) app.log.warn({ open_requests: open.size }, "requests still open after being ended; cutting their connections");
    } else {
      app.log.info({ open_requests: openAtStart, ms: Date.now() - started }, "every open request finished within the grace");
    }
    await app.close();
    app.log.info({ open_at_start: openAtStart, ended_by_grace: endedByGrace, ms: Date.now() - started }, "shut down");
    return { openAtStart, endedByGrace };
  }

  app.decorate("trackCall", (abortWith: (err: InfernoError) => void) => {
    const call: OpenWork = { abortWith };
    open.add(call);
    return () => {
      if (!open.delete(call)) return;
      if (open.size === 0) onIdle?.();
    };
  });

  app.decorate("drain", (graceMs: number) => {
    if (drained) {
      shorten?.(graceMs);
      return drained;
    }
    drained = run(graceMs);
    return drained;
  });
}

/** Graceful shutdown: `app.drain(graceMs)` and `app.drainSignal`. */
export const shutdownPlugin = fp(shutdown, { name: "inferno-shutdown", fastify: "5.x", dependencies: ["inferno-request-timeout"] });
