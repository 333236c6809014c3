import { AsyncLocalStorage } from "node:async_hooks";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span as OtelSpan, type Tracer } from "@opentelemetry/api";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorCatalogue, type ErrorCode } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { VERSION } from "../version.js";
import { hrTimeOf, recordEventSpans } from "./inference-spans.js";
import { Tracing } from "./otel-provider.js";
import { errorCodeOf } from "./request-log.js";
import type { SpanAttributes, SpanStatus } from "./span-ring.js";

export { SpanBuffer, type SpanAttributes, type SpanRecord, type SpanStatus } from "./span-ring.js";

/**
 * A span being timed (an OpenTelemetry span of the app's tracer); `end` records it once. `attributes`
 * may be added to until then (the call scope learns the model mid-call).
 */
export class Span {
  readonly attributes: SpanAttributes = {};
  /** The context whose active span this is: what child spans are started in. */
  readonly context: Context;

  constructor(private readonly tracer: Tracer, readonly otel: OtelSpan, parent: Context) {
    this.context = trace.setSpan(parent, otel);
  }

  get traceId(): string {
    return this.otel.spanContext().traceId;
  }
  get spanId(): string {
    return this.otel.spanContext().spanId;
  }
  /** The W3C `traceparent` naming this span, for the response. */
  get traceparent(): string {
    const ctx = this.otel.spanContext();
    return `00-${ctx.traceId}-${ctx.spanId}-${ctx.traceFlags & TraceFlags.SAMPLED ? "01" : "00"}`;
  }

  child(name: string, attributes?: SpanAttributes): Span {
    return new Span(this.tracer, this.tracer.startSpan(name, { attributes, startTime: hrTimeOf(performance.now()) }, this.context), this.context);
  }

  /** Ends the span; an `error.type` attribute (a catalogue code) becomes the error status's message. */
  end(status: SpanStatus = "ok", attributes?: SpanAttributes): void {
    if (!this.otel.isRecording()) return;
    this.otel.setAttributes(this.attributes);
    if (attributes) this.otel.setAttributes(attributes);
    if (status === "error") {
      const code = attributes?.["error.type"] ?? this.attributes["error.type"];
      this.otel.setStatus({ code: SpanStatusCode.ERROR, ...(code !== undefined ? { message: String(code) } : {}) });
    }
    this.otel.end(hrTimeOf(performance.now()));
  }
}

/** What a caller gets from `startSpan`: end it once with its outcome. */
export interface SpanHandle {
  end(status?: SpanStatus, attributes?: SpanAttributes): void;
}

const NOOP: SpanHandle = { end() {} };

/** A child of the request's span (a no-op when tracing is not registered). */
export function startSpan(request: FastifyRequest, name: string, attributes?: SpanAttributes): SpanHandle {
  return request.span?.child(name, attributes) ?? NOOP;
}

export interface TraceContext {
  traceId: string;
  parentId: string;
  flags: string;
}

const ZEROS = /^0+$/;

/**
 * A W3C `traceparent` (version-traceid-parentid-flags, lowercase hex); undefined for anything invalid.
 * A version above 00 is read by its first four fields, as the spec asks of a version-00 reader.
 */
export function parseTraceparent(header: string | string[] | undefined): TraceContext | undefined {
  if (typeof header !== "string") return undefined;
  const value = header.trim();
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(value);
  if (!m) return undefined;
  const [, version, traceId, parentId, flags, rest] = m;
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (ZEROS.test(traceId!) || ZEROS.test(parentId!)) return undefined;
  return { traceId: traceId!, parentId: parentId!, flags: flags! };
}

/** The context a server span starts in: the caller's remote span when its traceparent is valid, else none (a new trace). */
function incomingContext(header: string | string[] | undefined): Context {
  const incoming = parseTraceparent(header);
  if (!incoming) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: incoming.traceId, spanId: incoming.parentId, traceFlags: parseInt(incoming.flags, 16) & TraceFlags.SAMPLED, isRemote: true,
  });
}

declare module "fastify" {
  interface FastifyRequest {
    /** The span covering this whole request (set by the traces plugin). */
    span?: Span;
  }
  interface FastifyInstance {
    /**
     * A trace for a call of another transport (gRPC, IPC): its span continues `traceparent` when given;
     * `run` makes the work it starts (queue wait, generation, tensor runs) child spans of it.
     */
    traceCall(name: string, traceparent: string | undefined, attributes: SpanAttributes): { span: Span; traceparent: string; run<T>(fn: () => T): T };
  }
}

export interface TracesPluginOptions {
  registry: ModelRegistry;
  /** Finished spans kept for `GET /traces`. */
  capacity?: number;
  /** config otlpEndpoint: export spans there (OTLP HTTP/protobuf); unset: memory only. */
  otlpEndpoint?: string;
  /** config otlpServiceName. */
  serviceName?: string;
  /** How long closing the app may wait for the last export (the collector may be unreachable). */
  closeTimeoutMs?: number;
}

const tracesQuery = z.object({
  limit: z.coerce.number().int().min(1).optional(),
  trace_id: z.string().regex(/^[0-9a-f]{32}$/, "a trace id is 32 lowercase hex digits").optional(),
});

/** Marks an HTTP request's span as failed by its catalogue code: a server error, or a stream cut short by one. */
function httpOutcome(request: FastifyRequest, finished: boolean, status: number): { status: SpanStatus; attributes: SpanAttributes } {
  const code = errorCodeOf(request);
  const failed = !finished || status >= 500 || (code !== undefined && (errorCatalogue[code as ErrorCode]?.status ?? 500) >= 500);
  return {
    status: failed ? "error" : "ok",
    attributes: {
      "http.response.status_code": status,
      ...(code !== undefined ? { "error.type": code } : !finished ? { "error.type": "CLIENT_CLOSED" } : {}),
    },
  };
}

async function traces(app: FastifyInstance, opts: TracesPluginOptions): Promise<void> {
  const tracing = new Tracing({
    serviceName: opts.serviceName ?? "inferno",
    serviceVersion: VERSION,
    ringCapacity: opts.capacity ?? 1000,
    otlpEndpoint: opts.otlpEndpoint,
    log: app.log,
  });
  const { tracer } = tracing;
  if (tracing.exportUrl) app.log.info({ url: tracing.exportUrl }, "exporting traces over OTLP");
  // The registry's events carry no request; they are emitted in the handler's async context, which
  // this storage links back to the request's span. (Not OpenTelemetry's global context manager: that
  // one is process-wide, and each app here has its own provider.)
  const active = new AsyncLocalStorage<Span>();
  const serverSpan = (name: string, parent: Context, attributes: SpanAttributes) =>
    new Span(tracer, tracer.startSpan(name, { kind: SpanKind.SERVER, attributes, startTime: hrTimeOf(performance.now()) }, parent), parent);

  app.decorateRequest("span", undefined);
  app.decorate("traceCall", (name: string, traceparent: string | undefined, attributes: SpanAttributes) => {
    const span = serverSpan(name, incomingContext(traceparent), { ...attributes, "inferno.transport": String(attributes["rpc.system"] ?? name.split(" ")[0]) });
    return { span, traceparent: span.traceparent, run: <T>(fn: () => T) => active.run(span, fn) };
  });

  app.addHook("onRequest", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    const span = serverSpan(`${request.method} ${route}`, incomingContext(request.headers.traceparent), {
      "http.request.method": request.method,
      "http.route": route,
      "url.scheme": request.protocol,
      "inferno.transport": request.headers.upgrade?.toLowerCase() === "websocket" ? "websocket" : "http",
      "inferno.request_id": request.id,
    });
    request.span = span;
    reply.header("traceparent", span.traceparent);
    // 'close' comes once for every response: sent, hijacked (streams) or cut short by the client.
    reply.raw.once("close", () => {
      const outcome = httpOutcome(request, reply.raw.writableFinished, reply.raw.statusCode);
      span.end(outcome.status, outcome.attributes);
    });
    done();
  });
  // Calling `done` inside run() makes the handler (and everything it awaits) see the request's span.
  app.addHook("preHandler", (request, _reply, done) => (request.span ? active.run(request.span, done) : done()));

  const unobserve = opts.registry.observe((event) => recordEventSpans(tracer, active.getStore()?.context, event));
  app.addHook("onClose", async () => {
    unobserve();
    await tracing.close(opts.closeTimeoutMs);
  });

  app.withTypeProvider<ZodTypeProvider>().get(
    "/traces",
    { schema: { querystring: tracesQuery }, config: { role: "admin" } },
    async (request) => ({ traces: tracing.ring.recent(Math.min(request.query.limit ?? 100, tracing.ring.ring.capacity), request.query.trace_id) }),
  );
}

/**
 * OpenTelemetry tracing with a provider of the app's own: a server span per request or call (continuing
 * an incoming W3C `traceparent`), children for model load, queue wait, generation (prefill, decode) and
 * tensor runs, the last spans in memory at `GET /traces`, and OTLP export when an endpoint is configured.
 */
export const tracesPlugin = fp(traces, { name: "inferno-traces", fastify: "5.x" });
