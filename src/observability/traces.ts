import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ModelRegistry, RegistryEvent } from "../registry/model-registry.js";

export type SpanStatus = "ok" | "error";
export type SpanAttributes = Record<string, string | number | boolean>;

/** A finished span as `GET /traces` shows it. */
export interface SpanRecord {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  operation_name: string;
  start_time: string;
  duration_ms: number;
  status: SpanStatus;
  attributes: SpanAttributes;
}

/** The last `capacity` finished spans; older ones are overwritten. */
export class SpanBuffer {
  private readonly spans: Array<SpanRecord | undefined>;
  private next = 0;

  constructor(readonly capacity: number) {
    this.spans = new Array<SpanRecord | undefined>(capacity);
  }

  push(span: SpanRecord): void {
    this.spans[this.next] = span;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first, optionally only one trace's spans. */
  recent(limit: number, traceId?: string): SpanRecord[] {
    const out: SpanRecord[] = [];
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const span = this.spans[(this.next - i + this.capacity) % this.capacity];
      if (!span) break;
      if (traceId === undefined || span.trace_id === traceId) out.push(span);
    }
    return out;
  }
}

// Trace and span ids from a pooled random buffer: one randomBytes call per 512 ids instead of two
// synchronous calls per request (about 5 µs each, measured on the IPC path).
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let poolAt = 0;
const hex = (bytes: number) => {
  if (poolAt + bytes > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  poolAt += bytes;
  return pool.toString("hex", poolAt - bytes, poolAt);
};
const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** A span being timed; `end` records it once. */
export class Span {
  readonly spanId = hex(8);
  private readonly startedAt = Date.now();
  private readonly t0 = performance.now();
  private ended = false;

  constructor(
    private readonly sink: SpanBuffer,
    readonly traceId: string,
    readonly parentSpanId: string | null,
    readonly name: string,
    readonly attributes: SpanAttributes = {},
  ) {}

  child(name: string, attributes?: SpanAttributes): Span {
    return new Span(this.sink, this.traceId, this.spanId, name, attributes);
  }

  end(status: SpanStatus = "ok", attributes?: SpanAttributes): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.push(this.record(this.startedAt, performance.now() - this.t0, status, { ...this.attributes, ...attributes }));
  }

  /** Ends a span timed elsewhere: it ran for `durationMs`, up to now. */
  endAfter(durationMs: number, status: SpanStatus = "ok", attributes?: SpanAttributes): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.push(this.record(Date.now() - durationMs, durationMs, status, { ...this.attributes, ...attributes }));
  }

  private record(startMs: number, durationMs: number, status: SpanStatus, attributes: SpanAttributes): SpanRecord {
    return {
      trace_id: this.traceId,
      span_id: this.spanId,
      parent_span_id: this.parentSpanId,
      operation_name: this.name,
      start_time: new Date(startMs).toISOString(),
      duration_ms: round(durationMs),
      status,
      attributes,
    };
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

declare module "fastify" {
  interface FastifyRequest {
    /** The span covering this whole request (set by the traces plugin). */
    span?: Span;
  }
}

export interface TracesPluginOptions {
  registry: ModelRegistry;
  /** Finished spans kept for `GET /traces`. */
  capacity?: number;
}

const tracesQuery = z.object({
  limit: z.coerce.number().int().min(1).optional(),
  trace_id: z.string().regex(/^[0-9a-f]{32}$/, "a trace id is 32 lowercase hex digits").optional(),
});

const eventSpans: { [K in RegistryEvent["kind"]]: string } = {
  generation: "generation",
  queue: "queue.wait",
  load: "model.load",
  unload: "model.unload",
  "tensor-run": "tensor.run",
};

function eventSpan(event: RegistryEvent): { ms: number; attributes: SpanAttributes } {
  switch (event.kind) {
    case "generation": {
      const r = event.result;
      return {
        ms: r.totalMs,
        attributes: {
          model: event.model, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens,
          cached_prompt_tokens: r.cachedPromptTokens, time_to_first_token_ms: round(r.timeToFirstTokenMs), finish_reason: r.finishReason,
        },
      };
    }
    case "tensor-run":
      return { ms: event.ms, attributes: { model: event.model, batch: event.batch } };
    case "unload":
      return { ms: event.ms, attributes: { model: event.model, reason: event.reason } };
    default:
      return { ms: event.ms, attributes: { model: event.model } };
  }
}

declare module "fastify" {
  interface FastifyInstance {
    /**
     * A trace for a call of another transport (gRPC): its span continues `traceparent` when given;
     * `run` makes the work it starts (queue wait, generation, tensor runs) child spans of it.
     */
    traceCall(name: string, traceparent: string | undefined, attributes: SpanAttributes): { span: Span; traceparent: string; run<T>(fn: () => T): T };
  }
}

async function traces(app: FastifyInstance, opts: TracesPluginOptions): Promise<void> {
  const buffer = new SpanBuffer(opts.capacity ?? 1000);
  // The registry's events carry no request; they are emitted in the handler's async context, which
  // this storage links back to the request's span.
  const active = new AsyncLocalStorage<Span>();
  app.decorateRequest("span", undefined);
  app.decorate("traceCall", (name: string, traceparent: string | undefined, attributes: SpanAttributes) => {
    const incoming = parseTraceparent(traceparent);
    const span = new Span(buffer, incoming?.traceId ?? hex(16), incoming?.parentId ?? null, name, attributes);
    return { span, traceparent: `00-${span.traceId}-${span.spanId}-${incoming?.flags ?? "01"}`, run: <T>(fn: () => T) => active.run(span, fn) };
  });

  app.addHook("onRequest", (request, reply, done) => {
    const incoming = parseTraceparent(request.headers.traceparent);
    const route = request.routeOptions.url;
    const span = new Span(buffer, incoming?.traceId ?? hex(16), incoming?.parentId ?? null, `${request.method} ${route ?? "unmatched"}`, {
      "http.method": request.method,
      "http.route": route ?? "unmatched",
      request_id: request.id,
    });
    request.span = span;
    reply.header("traceparent", `00-${span.traceId}-${span.spanId}-${incoming?.flags ?? "01"}`);
    // 'close' comes once for every response: sent, hijacked (streams) or cut short by the client.
    reply.raw.once("close", () => {
      const finished = reply.raw.writableFinished;
      const status = reply.raw.statusCode;
      span.end(finished && status < 500 ? "ok" : "error", { "http.status_code": status, ...(finished ? {} : { client_closed: true }) });
    });
    done();
  });
  // Calling `done` inside run() makes the handler (and everything it awaits) see the request's span.
  app.addHook("preHandler", (request, _reply, done) => (request.span ? active.run(request.span, done) : done()));

  const unobserve = opts.registry.observe((event) => {
    const { ms, attributes } = eventSpan(event);
    const parent = active.getStore();
    const name = eventSpans[event.kind];
    // Outside any request (a keep-alive unload) an event starts a trace of its own.
    const span = parent ? parent.child(name, attributes) : new Span(buffer, hex(16), null, name, attributes);
    span.endAfter(ms);
  });
  app.addHook("onClose", async () => unobserve());

  app.withTypeProvider<ZodTypeProvider>().get(
    "/traces",
    { schema: { querystring: tracesQuery }, config: { role: "admin" } },
    async (request) => ({ traces: buffer.recent(Math.min(request.query.limit ?? 100, buffer.capacity), request.query.trace_id) }),
  );
}

/**
 * Dependency-free tracing: a span per request (continuing an incoming W3C `traceparent`), child spans
 * for queue wait, model load, generation and tensor runs, and the last spans in a ring buffer at `GET /traces`.
 */
export const tracesPlugin = fp(traces, { name: "inferno-traces", fastify: "5.x" });
