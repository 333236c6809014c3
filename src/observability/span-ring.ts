// The in-memory side of tracing: the last finished spans, kept for `GET /traces` whether or not they
// are exported.
import { SpanStatusCode, type AttributeValue } from "@opentelemetry/api";
import type { Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";

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

/** The last `capacity` items; older ones are overwritten. */
export class SpanBuffer<T = SpanRecord> {
  private readonly items: Array<T | undefined>;
  private next = 0;

  constructor(
    readonly capacity: number,
    private readonly traceIdOf: (item: T) => string = (item) => (item as SpanRecord).trace_id,
  ) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first, optionally only one trace's. */
  recent(limit: number, traceId?: string): T[] {
    const out: T[] = [];
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const item = this.items[(this.next - i + this.capacity) % this.capacity];
      if (item === undefined) break;
      if (traceId === undefined || this.traceIdOf(item) === traceId) out.push(item);
    }
    return out;
  }
}

/**
 * Keeps every recorded span, sampled or not (a caller's `traceparent` with flags 00 is still visible
 * here, only not exported). It holds the SDK's span as it is: the JSON is made only when asked for.
 */
export class RingSpanProcessor implements SpanProcessor {
  readonly ring: SpanBuffer<ReadableSpan>;

  constructor(capacity: number) {
    this.ring = new SpanBuffer<ReadableSpan>(capacity, (span) => span.spanContext().traceId);
  }

  onStart(_span: Span, _context: Context): void {}
  onEnd(span: ReadableSpan): void {
    this.ring.push(span);
  }
  forceFlush = async () => {};
  shutdown = async () => {};

  recent(limit: number, traceId?: string): SpanRecord[] {
    return this.ring.recent(limit, traceId).map(toRecord);
  }
}

// `GET /traces` predates OpenTelemetry here: its readers know these names, so the view adds them beside
// the semantic-convention ones (the exported spans carry only the latter).
const LEGACY_NAMES: ReadonlyArray<[legacy: string, from: string]> = [
  ["model", "gen_ai.request.model"],
  ["model", "inferno.model"],
  ["prompt_tokens", "gen_ai.usage.input_tokens"],
  ["completion_tokens", "gen_ai.usage.output_tokens"],
  ["cached_prompt_tokens", "gen_ai.usage.cache_read.input_tokens"],
  ["http.method", "http.request.method"],
  ["http.status_code", "http.response.status_code"],
  ["request_id", "inferno.request_id"],
  ["batch", "inferno.tensor.batch"],
  ["reason", "inferno.unload.reason"],
];

const plain = (v: AttributeValue | undefined): string | number | boolean | undefined =>
  v === undefined || v === null ? undefined : Array.isArray(v) ? v.join(",") : (v as string | number | boolean);

/** A finished SDK span in `GET /traces`' shape. */
export function toRecord(span: ReadableSpan): SpanRecord {
  const attributes: SpanAttributes = {};
  for (const [k, v] of Object.entries(span.attributes)) {
    const value = plain(v);
    if (value !== undefined) attributes[k] = value;
  }
  for (const [legacy, from] of LEGACY_NAMES) {
    if (attributes[from] !== undefined && attributes[legacy] === undefined) attributes[legacy] = attributes[from]!;
  }
  const finish = span.attributes["gen_ai.response.finish_reasons"];
  if (Array.isArray(finish)) attributes.finish_reason = String(finish[0]);
  const ttft = span.attributes["gen_ai.response.time_to_first_chunk"];
  if (typeof ttft === "number") attributes.time_to_first_token_ms = Math.round(ttft * 1e6) / 1000;
  const ctx = span.spanContext();
  const [sec, ns] = span.startTime;
  return {
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: span.parentSpanContext?.spanId ?? null,
    operation_name: span.name,
    start_time: new Date(sec * 1000 + Math.floor(ns / 1e6)).toISOString(),
    duration_ms: Math.round(span.duration[0] * 1e6 + span.duration[1] / 1e3) / 1000,
    status: span.status.code === SpanStatusCode.ERROR ? "error" : "ok",
    attributes,
  };
}
