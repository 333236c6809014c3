import { AsyncResource } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import websocket from "@fastify/websocket";
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { ANONYMOUS, authenticateToken, bearer, type CredentialCheckers } from "../../auth/auth-plugin.js";
import type { Principal } from "../../auth/principal.js";
import type { GenerateRequest } from "../../core/generation.js";
import { mapGeneration } from "../../core/stream-utils.js";
import { toGenerateRequest, type GenerationLimits } from "../../dialects/native.js";
import { parseClientMessage, WS_CLOSE, wsOut, type InferenceMessage, type ServerMessage } from "../../dialects/websocket.js";
import { InfernoError, isInfernoError, type ErrorCode } from "../../errors/catalogue.js";
import { isShedding, toInfernoError } from "../../errors/error-handler.js";
import { API_VERSION } from "../../core/api-version.js";
import type { AuditTrail } from "../../audit/audit-plugin.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startGeneration } from "../../services/generation.js";

/** Connection policy of `/ws`. */
export interface WebsocketSettings {
  /** A larger message is answered with PAYLOAD_TOO_LARGE and the socket stays open. */
  maxMessageBytes: number;
  /** Without a valid `auth` message (or Authorization header) by then, the socket is closed with 4401. */
  authTimeoutMs: number;
  /** A ping frame every interval; a client that has not answered the previous one by then is dropped. */
  pingIntervalMs: number;
  /** Inferences one socket may have in flight (queued ones included). */
  maxInFlight: number;
  /** Above this many unsent bytes generation pauses, until they fall below `lowWaterBytes`. */
  highWaterBytes: number;
  lowWaterBytes: number;
  /** A client that stays above the low-water mark this long is dropped (SLOW_CONSUMER, close 1008). */
  stallLimitMs: number;
}

export const WS_DEFAULTS: Readonly<WebsocketSettings & { maxFrameBytes: number }> = Object.freeze({
  /** A larger frame is refused by the ws library itself: it closes with 1009 before any handler sees it. */
  maxFrameBytes: 4 << 20,
  maxMessageBytes: 1 << 20,
  authTimeoutMs: 5000,
  pingIntervalMs: 30_000,
  maxInFlight: 16,
  highWaterBytes: 1 << 20,
  lowWaterBytes: 256 << 10,
  stallLimitMs: 30_000,
});

export interface WebsocketRoutesOptions {
  registry: ModelRegistry;
  limits: GenerationLimits;
  /** When enabled, a socket must authenticate (header on the upgrade or first `auth` message) before anything else. */
  auth: { enabled: boolean; checkers: CredentialCheckers };
  settings?: Partial<WebsocketSettings>;
  /** Aborts when the server drains: sockets take no new inference and close (1001) once theirs are done. */
  draining?: AbortSignal;
}

/** The parts of a `ws` WebSocket used here (the package ships no types). */
interface Socket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  ping(): void;
  pause(): void;
  resume(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: "message", listener: (data: Buffer) => void): void;
  on(event: "close" | "pong", listener: () => void): void;
}

const OPEN = 1;
const CLOSED = 3;
/** How often a paused generation looks at the send buffer again. */
const DRAIN_POLL_MS = 10;
/** A dropped slow consumer gets this long to read its last messages before the TCP connection is cut. */
const TERMINATE_GRACE_MS = 1000;
/** The abort reason of a `cancel` message, told apart from a closed socket. */
const CANCELLED = Symbol("cancelled");

interface Context extends Omit<WebsocketRoutesOptions, "settings"> {
  settings: WebsocketSettings;
  /** Counted and audited; `token` is reduced to a key id before it is stored. */
  onAuthFailure: (reason: string, source: string, token: string | undefined) => void;
}

/** One connected client: its auth state, its inferences by id, keep-alive and flow control. */
class Session {
  private principal: Principal | undefined;
  /** The credential the socket authenticated with, checked again for each inference (see `recheck`). */
  private token: string | undefined;
  private readonly running = new Map<string, AbortController>();
  private alive = true;
  /** Set while generation is paused for a full send buffer. */
  private draining: Promise<void> | undefined;
  private authTimer: NodeJS.Timeout | undefined;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly s: WebsocketSettings;
  private readonly log: FastifyBaseLogger;
  /** The client's address, for the audit log. */
  private readonly source: string;

  constructor(private readonly socket: Socket, request: FastifyRequest, private readonly ctx: Context) {
    this.s = ctx.settings;
    this.log = request.log;
    this.source = request.ip;
    // The auth hook sets the principal for a valid Authorization header on the upgrade.
    this.principal = ctx.auth.enabled ? request.principal : (request.principal ?? ANONYMOUS);
    if (this.principal) this.token = bearer(request);
    // Messages run in the upgrade's async context, so per-request bookkeeping (the rate limiter's token
    // count per key) follows them there.
    socket.on("message", AsyncResource.bind((data: Buffer) => this.onMessage(data)));
    socket.on("pong", () => (this.alive = true));
    socket.on("close", () => this.onClose());
    this.pingTimer = setInterval(() => this.heartbeat(), this.s.pingIntervalMs);
    ctx.draining?.addEventListener("abort", this.closeIfDrained);
    // The upgrade request's signal aborts with a coded reason when the shutdown grace runs out.
    const ended = request.abortSignal;
    ended?.addEventListener("abort", () => isInfernoError(ended.reason) && this.goAway(ended.reason), { once: true });
    if (this.principal) return;
    if (request.headers.authorization !== undefined) {
      this.refuse("invalid_credentials", "the API key or token of the Authorization header is invalid, expired or revoked", bearer(request));
      return;
    }
    this.authTimer = setTimeout(
      () => this.refuse("auth_timeout", `no valid 'auth' message within ${this.s.authTimeoutMs} ms`),
      this.s.authTimeoutMs,
    );
  }

  private onMessage(data: Buffer): void {
    this.alive = true;
    if (this.socket.readyState !== OPEN) return;
    const limit = this.s.maxMessageBytes;
    if (data.length > limit) return this.fail("PAYLOAD_TOO_LARGE", `a message may hold at most ${limit} bytes; this one has ${data.length}`, { max_bytes: limit });
    const parsed = parseClientMessage(data.toString("utf8"));
    if (!parsed.ok) return this.send(wsOut.error(parsed.error, parsed.id));
    const message = parsed.message;
    if (message.type === "auth") return this.authenticate(message.token);
    if (!this.principal) {
      const hint = `authenticate first: {"type":"auth","token":"<API key or JWT>"}`;
      return this.fail("AUTHENTICATION_FAILED", hint, { reason: "missing_credentials" }, "id" in message ? message.id : undefined);
    }
    if (message.type === "ping") return this.send(wsOut.pong());
    if (message.type === "cancel") return this.cancel(message.id);
    const ok = this.recheck(message.id);
    if (ok instanceof Promise) void ok.then((yes) => yes && this.start(message));
    else if (ok) this.start(message);
  }

  /**
   * A socket may stay open far longer than a role lasts: each inference is a request, so its credential
   * is checked again (a revoked key or a deleted user closes the socket; a JWT user's role is re-read).
   */
  private recheck(id: string): boolean | Promise<boolean> {
    if (!this.ctx.auth.enabled || this.token === undefined) return true;
    const checked = this.check(this.token, id);
    const apply = (principal: Principal | null | undefined) => {
      if (principal === null) return false;
      if (!principal) {
        this.refuse("invalid_credentials", "the API key or token is no longer valid (expired, revoked, or its user was removed)", this.token);
        return false;
      }
      this.principal = principal;
      return true;
    };
    return checked instanceof Promise ? checked.then(apply) : apply(checked);
  }

  /**
   * The credential's principal, at once or (from Redis) later. Null when it could not be checked (Redis
   * unreachable): that message gets the coded 503 and the socket stays open, as an HTTP client retries.
   */
  private check(token: string, id?: string): Principal | undefined | null | Promise<Principal | undefined | null> {
    const unavailable = (err: unknown) => {
      const coded = toInfernoError(err);
      this.fail(coded.code, coded.message, coded.details, id);
      return null;
    };
    try {
      const checked = authenticateToken(token, this.ctx.auth.checkers);
      return checked instanceof Promise ? checked.catch(unavailable) : checked;
    } catch (err) {
      return unavailable(err);
    }
  }

  private authenticate(token: string): void {
    // With auth off every socket acts as the anonymous admin and tokens are not looked at, as over HTTP.
    if (!this.ctx.auth.enabled) return this.send(wsOut.authOk(this.principal ?? ANONYMOUS));
    const checked = this.check(token);
    const apply = (principal: Principal | null | undefined) => {
      if (principal === null) return;
      if (!principal) return this.refuse("invalid_credentials", "the API key or token is invalid, expired or revoked", token);
      this.principal = principal;
      this.token = token;
      clearTimeout(this.authTimer);
      this.send(wsOut.authOk(principal));
    };
    if (checked instanceof Promise) void checked.then(apply);
    else apply(checked);
  }

  /** A failed or missing authentication: a last error, then close 4401 (its inferences stop too). */
  private refuse(reason: string, message: string, token?: string): void {
    if (this.socket.readyState !== OPEN) return;
    this.ctx.onAuthFailure(reason, this.source, token);
    this.log.info({ reason }, "websocket authentication failed");
    this.fail("AUTHENTICATION_FAILED", message, { reason });
    this.stopAll(new Error("socket closing"));
    this.socket.close(WS_CLOSE.unauthenticated, "authentication failed");
  }

  private cancel(id: string): void {
    const controller = this.running.get(id);
    if (!controller) return this.fail("NOT_FOUND", `no inference with id '${id}' is in flight on this socket`, undefined, id);
    controller.abort(CANCELLED);
  }

  private start(message: InferenceMessage): void {
    const { id } = message;
    if (this.ctx.draining?.aborted) return this.fail("SERVICE_UNAVAILABLE", "the server is shutting down", { reason: "shutting_down" }, id);
    if (this.running.has(id)) {
      return this.fail("INVALID_REQUEST", `an inference with id '${id}' is already in flight on this socket`, { reason: "duplicate_id" }, id);
    }
    const max = this.s.maxInFlight;
    if (this.running.size >= max) {
      return this.fail("RATE_LIMIT_EXCEEDED", `at most ${max} inferences may be in flight on one socket`, { limit: "socket_in_flight", max_in_flight: max }, id);
    }
    let request: GenerateRequest;
    try {
      request = toGenerateRequest(message.model, message, this.ctx.limits);
    } catch (err) {
      return this.send(wsOut.error(toInfernoError(err), id));
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    void this.run(id, request, message.stream !== false, controller);
  }

  /** One inference through the shared generation path; its last message is `complete` or `error`. */
  private async run(id: string, request: GenerateRequest, streamTokens: boolean, controller: AbortController): Promise<void> {
    const { signal } = controller;
    let sentText = "";
    // The id is free again before its last message goes out, so a client may reuse it right away.
    const finish = (message: ServerMessage) => {
      if (this.running.get(id) === controller) this.running.delete(id);
      this.send(message);
    };
    try {
      const stream = await startGeneration(this.ctx.registry, request, signal);
      // A cancel aborts the signal: the loop stops at its next token and still returns the usage so far.
      const events = mapGeneration<ServerMessage>(
        stream,
        (chunk) => (signal.aborted || !streamTokens ? undefined : wsOut.token(id, chunk)),
        (result) => [signal.aborted ? wsOut.cancelled(id, sentText, result) : wsOut.complete(id, result)],
      );
      // Leaving the loop early returns `events`, which returns the stream and frees its sequence.
      for await (const event of events) {
        if (this.socket.readyState !== OPEN) break;
        if (event.type !== "token") {
          finish(event);
          break;
        }
        sentText += event.token;
        this.send(event);
        if (this.draining) await this.draining;
      }
    } catch (err) {
      if (this.socket.readyState !== OPEN) return;
      if (signal.reason === CANCELLED) return finish(wsOut.cancelled(id, sentText));
      const coded = toInfernoError(err);
      if (isShedding(coded)) this.log.warn({ code: coded.code, reason: coded.message }, "websocket inference ended early");
      else if (coded.status >= 500) this.log.error({ err, code: coded.code }, "websocket inference failed");
      finish(wsOut.error(coded, id));
    } finally {
      if (this.running.get(id) === controller) this.running.delete(id);
      this.closeIfDrained();
    }
  }

  /** While the server drains, a socket with no inference left closes with 1001 (going away). */
  private readonly closeIfDrained = () => {
    if (this.ctx.draining?.aborted && this.running.size === 0 && this.socket.readyState === OPEN) {
      this.socket.close(WS_CLOSE.goingAway, "server shutting down");
    }
  };

  /** Ends every inference with `err` (an error message for each id), then closes with 1001 (going away). */
  private goAway(err: InfernoError): void {
    if (this.socket.readyState !== OPEN) return;
    for (const id of this.running.keys()) this.send(wsOut.error(err, id));
    this.stopAll(err);
    this.socket.close(WS_CLOSE.goingAway, "server shutting down");
  }

  /** A coded error, about one inference when `id` is given. */
  private fail(code: ErrorCode, message: string, details?: Record<string, unknown>, id?: string): void {
    this.send(wsOut.error(new InfernoError(code, message, details), id));
  }

  private send(message: ServerMessage): void {
    if (this.socket.readyState !== OPEN) return;
    this.socket.send(JSON.stringify(message));
    if (!this.draining && this.socket.bufferedAmount > this.s.highWaterBytes) {
      this.draining = this.waitForDrain().finally(() => (this.draining = undefined));
    }
  }

  /**
   * Backpressure by pausing: every generation on this socket awaits this before pulling its next token,
   * and reading from the client pauses too, so a client that sends without reading cannot grow the buffer
   * with replies either. Unsent data stays under the high-water mark plus one message per inference. A
   * client that reads nothing for `stallLimitMs` is dropped.
   */
  private async waitForDrain(): Promise<void> {
    const since = Date.now();
    this.socket.pause();
    try {
      while (this.socket.readyState === OPEN && this.socket.bufferedAmount > this.s.lowWaterBytes) {
        if (Date.now() - since >= this.s.stallLimitMs) return this.dropSlowConsumer();
        await sleep(DRAIN_POLL_MS);
      }
    } finally {
      this.socket.resume();
    }
  }

  private dropSlowConsumer(): void {
    const details = { buffered_bytes: this.socket.bufferedAmount, stall_limit_ms: this.s.stallLimitMs };
    this.log.info(details, "websocket client stopped reading; dropping it");
    this.fail("SLOW_CONSUMER", `the client read nothing for ${details.stall_limit_ms} ms with ${details.buffered_bytes} bytes waiting`, details);
    this.stopAll(new Error("slow consumer"));
    this.socket.close(WS_CLOSE.policyViolation, "slow consumer");
    // It is not reading, so it would not answer the closing handshake either.
    setTimeout(() => this.socket.terminate(), TERMINATE_GRACE_MS).unref();
  }

  private heartbeat(): void {
    // While reading is paused for backpressure, pongs wait unread: the stall limit judges the client then.
    if (this.draining) return;
    if (!this.alive) {
      this.log.info("websocket client did not answer a ping; dropping it");
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  private stopAll(reason: Error): void {
    for (const controller of this.running.values()) controller.abort(reason);
  }

  private onClose(): void {
    this.ctx.draining?.removeEventListener("abort", this.closeIfDrained);
    clearInterval(this.pingTimer);
    clearTimeout(this.authTimer);
    this.stopAll(new Error("socket closed"));
  }
}

/**
 * @fastify/websocket for the whole app. Registered before any route: its hooks then also close an upgrade
 * sent to any other route, which would otherwise hold its socket (and the server's shutdown) forever.
 */
export const websocketSupport = fp(
  async (app: FastifyInstance, opts: { maxFrameBytes?: number }) => {
    await app.register(websocket, {
      options: { maxPayload: opts.maxFrameBytes ?? WS_DEFAULTS.maxFrameBytes },
      // Protocol errors (an oversized or malformed frame) have already made ws start the closing handshake.
      errorHandler: (err, socket, request) => {
        request.log.info({ err }, "websocket error");
        if ((socket as Socket).readyState === OPEN) (socket as Socket).terminate();
      },
      // Going away (1001), then cut whoever has not finished the closing handshake a moment later.
      preClose: async function (this: FastifyInstance) {
        const clients = [...this.websocketServer.clients] as Socket[];
        for (const client of clients) client.close(WS_CLOSE.goingAway, "server shutting down");
        for (let waited = 0; waited < TERMINATE_GRACE_MS && clients.some((c) => c.readyState !== CLOSED); waited += DRAIN_POLL_MS) {
          await sleep(DRAIN_POLL_MS);
        }
        for (const client of clients) client.terminate();
      },
    });
    // ws writes the upgrade's 101 itself, not Fastify: the API version joins its headers here.
    app.websocketServer.on("headers", (headers: string[]) => headers.push(`API-Version: ${API_VERSION}`));
  },
  { name: "inferno-websocket", fastify: "5.x" },
);

/**
 * `GET /ws`: the WebSocket API (auth, inference, cancel, ping); needs `websocketSupport`. Inferences run
 * through the same generation path as the HTTP dialects; many may be in flight per socket, told apart by id.
 */
export const websocketRoutes: FastifyPluginAsync<WebsocketRoutesOptions> = async (app, opts) => {
  const settings = { ...WS_DEFAULTS, ...opts.settings };
  const metrics = (app as { metrics?: { authFailures?: { inc(labels: Record<string, string>): void } } }).metrics;
  // Optional as metrics are: the routes also run on a bare app (tests of the socket's own settings).
  const audit = (app as { audit?: AuditTrail }).audit;
  const ctx: Context = {
    ...opts,
    settings,
    onAuthFailure: (reason, source, token) => {
      metrics?.authFailures?.inc({ reason });
      audit?.failure({ type: "auth.failure", transport: "websocket", source, reason, token, target: "GET /ws" });
    },
  };
  app.route({
    method: "GET",
    url: "/ws",
    // The auth hook lets GET /ws through for the upgrade's sake; a plain GET is refused as any
    // protected route would refuse it, and otherwise told to upgrade.
    handler: async (request, reply) => {
      if (opts.auth.enabled && !request.principal) {
        reply.header("www-authenticate", 'Bearer realm="inferno"');
        const reason = request.headers.authorization === undefined ? "missing_credentials" : "invalid_credentials";
        throw new InfernoError("AUTHENTICATION_FAILED", "this route needs 'Authorization: Bearer <API key or JWT>'", { reason });
      }
      throw new InfernoError("INVALID_REQUEST", "GET /ws is the WebSocket API: connect with 'Upgrade: websocket'");
    },
    wsHandler: (socket, request) => {
      new Session(socket as Socket, request, ctx);
    },
  });
};
