// One IPC client connection: frames in, requests run concurrently (up to a limit, then the socket is not
// read), responses interleaved by id, a stream paused while the socket does not drain.
import type { Socket } from "node:net";
import { authenticateToken } from "../../auth/auth-plugin.js";
import type { Principal } from "../../auth/principal.js";
import { ipcOps, ipcOut, isIpcOp, IPC_PROTOCOL_VERSION, requestHead } from "../../dialects/ipc.js";
import { InfernoError, isInfernoError, type ErrorCode } from "../../errors/catalogue.js";
import { parseBody } from "../../errors/error-handler.js";
import { VERSION } from "../../version.js";
import { API_VERSION, checkApiVersion } from "../../core/api-version.js";
import { CallScope, type CallSource, type ScopeContext } from "../call-scope.js";
import { decodeFrame, encodeFrame, FrameReader } from "./frames.js";
import { modelOf, OP_POLICY, runOp, type OpContext } from "./ipc-ops.js";

export interface ConnectionSettings {
  maxFrameBytes: number;
  /** Requests one connection may have running; the server stops reading it beyond. */
  maxInFlight: number;
}

export interface ConnectionContext extends ScopeContext, Omit<OpContext, "send"> {
  settings: ConnectionSettings;
}

const OPEN_OPS = new Set(["hello", "health"]);

export class IpcConnection {
  private readonly reader: FrameReader;
  /** Requests running, by id; undefined while its credential is being checked (CallScope.open). */
  private readonly running = new Map<number, CallScope | undefined>();
  /** Ids cancelled while their credential was being checked: cancelled as soon as they open. */
  private readonly cancelOnOpen = new Set<number>();
  /**
   * Requests read while `maxInFlight` were running: they start in order as slots free. The socket stays
   * readable while up to as many again wait, so a `cancel` still gets through to a busy connection.
   */
  private readonly waiting = new Map<number, { op: keyof typeof OP_POLICY; request: Record<string, unknown> }>();
  private readonly goneListeners = new Set<() => void>();
  private token: string | undefined;
  private greeted = false;
  private closed = false;
  private paused = false;
  private corked = false;
  private drained: Promise<void> | undefined;

  constructor(private readonly socket: Socket, private readonly ctx: ConnectionContext) {
    this.reader = new FrameReader(ctx.settings.maxFrameBytes);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("close", () => this.onClose());
    socket.on("error", () => {});
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      return this.fail(err);
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.onFrame(frame);
    }
  }

  private onFrame(frame: Buffer): void {
    let message: unknown;
    try {
      message = decodeFrame(frame);
    } catch (err) {
      return this.fail(new InfernoError("INVALID_REQUEST", `a frame is not valid MessagePack (${(err as Error).message})`));
    }
    if (message === null || typeof message !== "object" || Array.isArray(message) || message instanceof Uint8Array) {
      return this.fail(new InfernoError("INVALID_REQUEST", "a frame must hold one MessagePack map"));
    }
    const head = requestHead.safeParse(message);
    if (!head.success) {
      return this.fail(new InfernoError("INVALID_REQUEST", "a request needs id (an unsigned integer) and op (a string)", { issues: head.error.issues.map((i) => i.path.join(".")) }));
    }
    const { id, op } = head.data;
    const request = message as Record<string, unknown>;
    if (this.running.has(id) || this.waiting.has(id)) return this.fail(new InfernoError("INVALID_REQUEST", `id ${id} is already in flight on this connection`, { id }));
    if (this.ctx.auth.enabled && !this.greeted && !OPEN_OPS.has(op)) {
      this.ctx.app.metrics.authFailures.inc({ reason: "missing_credentials" });
      return this.fail(new InfernoError("AUTHENTICATION_FAILED", "send 'hello' with a token (an API key or JWT) first"), id);
    }
    if (!isIpcOp(op)) return void this.send(ipcOut.error(id, "INVALID_REQUEST", `unknown op '${op.slice(0, 64)}'`, { ops: Object.keys(ipcOps) }));
    if (op === "hello") return this.hello(id, request);
    if (op === "cancel") return this.cancel(id, request);
    if (this.running.size < this.ctx.settings.maxInFlight) return this.start(op, id, request);
    this.waiting.set(id, { op, request });
    if (this.waiting.size > this.ctx.settings.maxInFlight && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** A slot freed: the oldest waiting requests start; the socket is read again once few enough wait. */
  private startWaiting(): void {
    for (const [id, { op, request }] of this.waiting) {
      if (this.running.size >= this.ctx.settings.maxInFlight) break;
      this.waiting.delete(id);
      this.start(op, id, request);
    }
    if (this.paused && this.waiting.size <= this.ctx.settings.maxInFlight && !this.closed) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private hello(id: number, request: Record<string, unknown>): void {
    let body;
    try {
      body = parseBody(ipcOps.hello, request);
    } catch (err) {
      return void this.sendError(id, err);
    }
    if (body.version !== undefined && body.version !== IPC_PROTOCOL_VERSION) {
      return this.fail(new InfernoError("INVALID_REQUEST", `protocol version ${body.version} is not served; this server speaks ${IPC_PROTOCOL_VERSION}`, { version: IPC_PROTOCOL_VERSION }), id);
    }
    try {
      checkApiVersion(body.api_version);
    } catch (err) {
      return this.fail(err as InfernoError, id);
    }
    if (this.ctx.auth.enabled) {
      const token = body.token;
      // From Redis the answer comes later: a client waits for hello's answer before its first request.
      const checked = token ? authenticateToken(token, this.ctx.auth.checkers) : undefined;
      if (!(checked instanceof Promise)) return this.greet(id, token, checked);
      return void checked.then((principal) => this.greet(id, token, principal), (err: unknown) => this.sendError(id, err));
    }
    this.greeted = true;
    this.send(ipcOut.result(id, { version: IPC_PROTOCOL_VERSION, server: "inferno", server_version: VERSION, api_version: API_VERSION, auth: false }));
  }

  private greet(id: number, token: string | undefined, principal: Principal | undefined): void {
    if (!principal) {
      const reason = token ? "invalid_credentials" : "missing_credentials";
      this.ctx.app.metrics.authFailures.inc({ reason });
      this.ctx.app.audit.failure({ type: "auth.failure", transport: "ipc", source: "ipc", reason, token, target: "hello" });
      return this.fail(new InfernoError("AUTHENTICATION_FAILED", token ? "the API key or token is invalid, expired or revoked" : "hello needs a token when auth is on", { reason }), id);
    }
    this.token = token;
    this.greeted = true;
    this.send(ipcOut.result(id, {
      version: IPC_PROTOCOL_VERSION, server: "inferno", server_version: VERSION, api_version: API_VERSION, auth: true, user: principal.user, role: principal.role,
    }));
  }

  private cancel(id: number, request: Record<string, unknown>): void {
    let body;
    try {
      body = parseBody(ipcOps.cancel, request);
    } catch (err) {
      return void this.sendError(id, err);
    }
    const running = this.running.has(body.target);
    const scope = this.running.get(body.target);
    if (scope) scope.cancel();
    else if (running) this.cancelOnOpen.add(body.target);
    const queued = this.waiting.delete(body.target);
    if (queued) this.send(ipcOut.error(body.target, "CANCELLED", "the client cancelled the request before it started"));
    this.send(ipcOut.result(id, { target: body.target, cancelled: running || queued }));
  }

  private start(op: keyof typeof OP_POLICY, id: number, request: Record<string, unknown>): void {
    const source: CallSource = {
      transport: "ipc",
      route: op,
      token: this.token,
      peer: "ipc",
      deadlineAt: Infinity,
      traceparent: typeof request.traceparent === "string" ? request.traceparent : undefined,
      onGone: (listener) => {
        this.goneListeners.add(listener);
        return () => this.goneListeners.delete(listener);
      },
      statusOf: (code) => code,
      credentialHint: "a 'hello' with a token first",
    };
    // The id is taken (and its slot) while the credential is checked, which may ask Redis.
    this.running.set(id, undefined);
    CallScope.open(this.ctx, source, OP_POLICY[op]).then(
      (scope) => this.run(op, id, request, scope),
      (err: unknown) => {
        this.cancelOnOpen.delete(id);
        this.running.delete(id);
        this.sendError(id, err);
        this.startWaiting();
      },
    );
  }

  private run(op: keyof typeof OP_POLICY, id: number, request: Record<string, unknown>, scope: CallScope): void {
    const model = modelOf(request);
    if (model !== undefined) scope.named(model);
    this.running.set(id, scope);
    if (this.cancelOnOpen.delete(id)) scope.cancel();
    const ctx: OpContext = { ...this.ctx, send: (frame) => this.send(frame) };
    // Health checks are not counted against rate limits (as GET /health is not).
    const run = () => runOp(op, id, request, scope, ctx);
    // A request that came with a traceparent gets its own span's back on its final frame.
    const traced = (frame: object) => (request.traceparent === undefined ? frame : { ...frame, traceparent: scope.traceparent });
    (OP_POLICY[op] === "public" ? scope.traced(run) : scope.limited(run)).then(
      (final) => {
        scope.end();
        this.finish(id, traced(final));
      },
      (err: unknown) => {
        const coded = scope.failure(err);
        scope.end(coded);
        this.finish(id, traced(ipcOut.error(id, coded.code, coded.message, coded.details)));
      },
    );
  }

  /** The last frame of a request: its id is free again once that frame is queued (the client may reuse it). */
  private finish(id: number, frame: object): void {
    this.running.delete(id);
    void this.send(frame);
    this.startWaiting();
  }

  /** Writes a frame; resolves once the socket is below its high-water mark again (a slow reader pauses its streams). */
  private send(frame: object): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.resolve();
    // Frames written in the same tick (answers of requests that finished together) go out in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    if (this.socket.write(encodeFrame(frame))) return Promise.resolve();
    // Every request waiting to write shares one wait for the socket to drain (or close).
    this.drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        this.drained = undefined;
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
    return this.drained;
  }

  private sendError(id: number, err: unknown): Promise<void> {
    const coded = isInfernoError(err) ? err : new InfernoError("INTERNAL_ERROR", "internal server error", undefined, { cause: err });
    return this.send(ipcOut.error(id, coded.code, coded.message, coded.details));
  }

  /** A protocol error: one last error frame (for the request's id when known), then the connection closes. */
  private fail(err: unknown, id: number | null = null): void {
    if (this.closed) return;
    const coded = isInfernoError(err) ? err : new InfernoError("INTERNAL_ERROR", "internal server error");
    this.socket.end(encodeFrame(ipcOut.error(id, coded.code as ErrorCode, coded.message, coded.details)));
    this.closed = true;
    this.onClose();
  }

  /** The client went away (or was closed): every request it had running stops. */
  private onClose(): void {
    this.closed = true;
    for (const listener of [...this.goneListeners]) listener();
    this.goneListeners.clear();
  }

  /** Ends the connection at server shutdown: frames already written are still delivered; it is cut after `graceMs`. */
  close(graceMs: number): void {
    this.closed = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), graceMs).unref();
  }
}
