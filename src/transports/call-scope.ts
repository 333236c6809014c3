// What every call of a transport that is not a Fastify route (gRPC, IPC) goes through, as an HTTP request
// goes through the app's hooks: the drain, auth (bearer credential, roles), rate limits, the time limit and
// the client's deadline, metrics and traces, the API version and the audit log.
import type { FastifyInstance } from "fastify";
import { actorOf, type AuditType } from "../audit/audit-log.js";
import { checkApiVersion } from "../core/api-version.js";
import { ANONYMOUS, authenticateToken, type CredentialCheckers } from "../auth/auth-plugin.js";
import type { Principal, Role } from "../auth/principal.js";
import { InfernoError, isInfernoError, type ErrorCode } from "../errors/catalogue.js";
import { toInfernoError } from "../errors/error-handler.js";
import { shuttingDown } from "../lifecycle/shutdown.js";
import type { Span } from "../observability/traces.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import type { GenerationLimits } from "../services/generation.js";
import type { TensorLimits } from "../services/tensors.js";

/** A call as its transport sees it. */
export interface CallSource {
  transport: "grpc" | "ipc" | "mcp";
  /** The metrics `route` label: the gRPC method path, the IPC op. */
  route: string;
  /** The bearer credential (API key or JWT) the call presents. */
  token: string | undefined;
  /** The client's address, the rate-limit key of a call without credentials. */
  peer: string;
  /** When the client gives up (epoch ms; Infinity for never). */
  deadlineAt: number;
  traceparent: string | undefined;
  /** Calls `listener` when the client goes away (cancels, disconnects); returns its removal. */
  onGone(listener: () => void): () => void;
  /** How the transport names the status of a coded error (gRPC status names; IPC the code itself). */
  statusOf(code: ErrorCode): string;
  /** How a client of this transport presents a credential, for the refusal's message. */
  credentialHint: string;
  /** The API version the client asks for (gRPC `api-version` metadata); absent means the current one. */
  apiVersion?: string | undefined;
  /** Called once as the scope opens, before any refusal, with the call's own W3C trace context (gRPC sends it in its headers). */
  opened?(traceparent: string): void;
}

/** Who may make a call: anyone (health), any authenticated principal, or admins. */
export type CallPolicy = "public" | Role;

/** What a non-HTTP transport plugin (gRPC, IPC) is given beside its own settings. */
export interface TransportOptions {
  registry: ModelRegistry;
  limits: GenerationLimits & TensorLimits;
  auth: { enabled: boolean; checkers: CredentialCheckers };
  requestTimeoutMs: number;
}

export interface ScopeContext {
  app: FastifyInstance;
  auth: { enabled: boolean; checkers: CredentialCheckers };
  requestTimeoutMs: number;
  /** True once the server drains: calls other than health checks are refused with UNAVAILABLE. */
  draining: () => boolean;
}

/** The call scope's context for a transport plugin of `app`. */
export const scopeContext = (app: FastifyInstance, opts: TransportOptions): ScopeContext => ({
  app, auth: opts.auth, requestTimeoutMs: opts.requestTimeoutMs, draining: () => app.drainSignal.aborted,
});

/**
 * One call: `signal` aborts when the client cancels, its deadline or the server's time limit passes, or the
 * drain's grace runs out (its reason says which). `end` records the outcome once.
 */
export class CallScope {
  /** Who the call acts as: set by `open` once the credential is checked. */
  principal: Principal = ANONYMOUS;
  readonly signal: AbortSignal;
  readonly span: Span;
  readonly traceparent: string;
  private readonly controller = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly cleanups: Array<() => void> = [];
  private readonly record: (outcome: { model: string; route: string; status: string }) => void;
  private readonly run: <T>(fn: () => T) => T;
  private model = "none";
  private ended = false;
  /** The client cancelled or left, or its deadline passed: the transport has ended the call already. */
  private gone: "CANCELLED" | "DEADLINE_EXCEEDED" | undefined;

  /**
   * Starts a call: rejects with the coded refusal (draining, credentials, role, credential store
   * unreachable) before any work. The credential may be checked against Redis, hence the promise.
   */
  static async open(ctx: ScopeContext, source: CallSource, policy: CallPolicy): Promise<CallScope> {
    const scope = new CallScope(ctx, source, policy);
    try {
      checkApiVersion(source.apiVersion);
      scope.principal = await scope.authenticate(policy);
    } catch (err) {
      scope.end(err);
      throw err;
    }
    return scope;
  }

  private constructor(private readonly ctx: ScopeContext, private readonly source: CallSource, policy: CallPolicy) {
    const { app } = ctx;
    this.signal = this.controller.signal;
    this.record = app.metrics.startCall(source.transport);
    const trace = app.traceCall(`${source.transport} ${source.route}`, source.traceparent, { "rpc.system": source.transport, "rpc.method": source.route });
    this.span = trace.span;
    this.traceparent = trace.traceparent;
    this.run = trace.run;
    source.opened?.(trace.traceparent);
    const deadlineAt = source.deadlineAt;
    // Several calls may share one client connection (a gRPC stream, an IPC socket): each takes its listener away when it ends.
    this.cleanups.push(
      source.onGone(() => {
        this.gone = Date.now() >= deadlineAt ? "DEADLINE_EXCEEDED" : "CANCELLED";
        this.abort(new InfernoError("SERVICE_UNAVAILABLE", "the client cancelled the call", { reason: "cancelled" }));
      }),
    );
    if (policy !== "public" && ctx.draining()) {
      const err = shuttingDown({ retry_after: 1 });
      this.end(err);
      throw err;
    }
    const deadlineMs = deadlineAt - Date.now();
    const limitMs = Math.min(ctx.requestTimeoutMs, deadlineMs);
    // The error is made only when the limit passes (an Error captures a stack: not for every call).
    this.timers.push(setTimeout(() => this.abort(new InfernoError("TIMEOUT", deadlineMs <= ctx.requestTimeoutMs ? "the call's deadline passed" : `the call did not complete within ${ctx.requestTimeoutMs} ms`, {
      timeout_ms: Math.max(0, Math.round(limitMs)),
    })), Math.max(0, limitMs)));
    if (policy !== "public") this.cleanups.push(app.trackCall((err) => this.abort(err)));
  }

  private async authenticate(policy: CallPolicy): Promise<Principal> {
    const { auth, app } = this.ctx;
    if (!auth.enabled) return ANONYMOUS;
    const token = this.source.token;
    if (policy === "public") {
      // A health check answers even while the credential store is unreachable.
      return (token ? await Promise.resolve(authenticateToken(token, auth.checkers)).catch(() => undefined) : undefined) ?? ANONYMOUS;
    }
    const principal = token ? await authenticateToken(token, auth.checkers) : undefined;
    if (!principal) {
      const reason = token ? "invalid_credentials" : "missing_credentials";
      app.metrics.authFailures.inc({ reason });
      app.audit.failure({ type: "auth.failure", transport: this.source.transport, source: this.source.peer, reason, token, target: this.source.route });
      throw new InfernoError(
        "AUTHENTICATION_FAILED",
        token ? "the API key or token is invalid, expired or revoked" : `this call needs ${this.source.credentialHint}`,
        { reason },
      );
    }
    if (policy === "admin" && principal.role !== "admin") {
      app.audit.failure({ type: "auth.denied", transport: this.source.transport, source: this.source.peer, reason: "role", actor: actorOf(principal), target: this.source.route });
      throw new InfernoError("AUTHORIZATION_FAILED", `this call needs the admin role; '${principal.user}' has '${principal.role}'`, { required_role: "admin" });
    }
    return principal;
  }

  /** Records an event done by this call's principal (a model loaded, say) in the audit log. */
  audit(type: AuditType, target?: string, details?: Record<string, unknown>): void {
    const { transport, peer } = this.source;
    this.ctx.app.audit.record({ type, ...actorOf(this.principal), transport, source: peer, target, ...(details ? { details } : {}) });
  }

  /** The model the call names, for the metrics label (only ids the registry knows). */
  named(model: string): void {
    this.model = this.ctx.app.metrics.modelLabel(model);
    this.span.attributes["inferno.model"] = model;
  }

  /** Counts the call against its key's rate limits (refusing it when over) and runs `work` as that key's usage, inside the call's trace. */
  async limited<T>(work: () => Promise<T>): Promise<T> {
    const limiter = this.ctx.app.rateLimiter;
    const { key, release } = await limiter.admit(this.ctx.auth.enabled ? this.principal : undefined, this.source.peer);
    this.cleanups.push(release);
    return limiter.runAs(key, () => this.run(work));
  }

  /** Runs `work` inside the call's trace without counting it (health and metadata calls). */
  traced<T>(work: () => T): T {
    return this.run(work);
  }

  /** The client asked to stop this call (IPC `cancel`): the work stops; a generation still returns its usage so far. */
  cancel(): void {
    this.gone = "CANCELLED";
    this.abort(new InfernoError("CANCELLED", "the client cancelled the request"));
  }

  /**
   * After work that stops quietly when aborted (a generation returns what it has): throws the reason when
   * the server stopped it (time limit, shutdown grace), so the client gets that error, not a short success.
   * A client's own cancel is not an error.
   */
  throwIfAborted(): void {
    if (this.signal.aborted && !this.cancelled) throw this.failure(this.signal.reason);
  }

  /** Whether the call ended because the client cancelled it. */
  get cancelled(): boolean {
    return this.gone === "CANCELLED";
  }

  abort(reason: InfernoError): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** The coded error a failure is reported as: the abort's reason when the call was aborted. */
  failure(err: unknown): InfernoError {
    const reason = this.signal.reason as unknown;
    if (this.signal.aborted && isInfernoError(reason)) return reason;
    return toInfernoError(err);
  }

  /** Records the outcome (once): metrics under the gRPC status name, the trace span, releases. */
  end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.cleanups) c();
    const coded = err === undefined ? undefined : isInfernoError(err) ? err : toInfernoError(err);
    const status = this.gone ?? (coded ? this.source.statusOf(coded.code) : "OK");
    this.record({ model: this.model, route: this.source.route, status });
    this.span.end(coded && coded.status >= 500 ? "error" : "ok", { "rpc.status": status, ...(coded ? { "error.type": coded.code } : {}) });
    if (coded && coded.status >= 500 && coded.code !== "SERVICE_UNAVAILABLE" && coded.code !== "TIMEOUT") {
      this.ctx.app.log.error({ err: coded.cause ?? coded, transport: this.source.transport, route: this.source.route }, "call failed");
    }
  }
}
