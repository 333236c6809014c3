// One OpenTelemetry TracerProvider per app, never the global one: tests build many apps in one process,
// and an embedding application may have its own (as metrics have a prom-client Registry per app).
// Nothing here registers a global context manager or propagator: the traces plugin carries the active
// span itself (AsyncLocalStorage) and parents every span explicitly.
import { trace, TraceFlags, type Context, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider, BatchSpanProcessor, SamplingDecision, type ReadableSpan, type Sampler, type SamplingResult, type SpanExporter, type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { RingSpanProcessor } from "./span-ring.js";

/** Enough of a pino logger for the exporter's state changes. */
interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface TracingOptions {
  serviceName: string;
  serviceVersion: string;
  /** Finished spans kept in memory for `GET /traces`. */
  ringCapacity: number;
  /** config otlpEndpoint: where spans are exported; none when unset. */
  otlpEndpoint?: string;
  log: Log;
  /** Export knobs, small in tests; the defaults suit a server. */
  exportDelayMs?: number;
  exportTimeoutMs?: number;
}

/** The OTLP traces URL of an endpoint: a base URL gets the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith("/v1/traces")) url.pathname = url.pathname.replace(/\/?$/, "/v1/traces");
  return url.toString();
}

const RECORD: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD });
const SAMPLE: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });

/**
 * Every span is recorded (so `GET /traces` shows it); it is exported unless the caller's `traceparent`
 * said its trace is not sampled (flags 00), which also goes back out in the response's traceparent.
 */
const recordAllSampler: Sampler = {
  shouldSample: (context: Context) => {
    const parent = trace.getSpanContext(context);
    return parent && (parent.traceFlags & TraceFlags.SAMPLED) === 0 ? RECORD : SAMPLE;
  },
  toString: () => "InfernoRecordAllSampler",
};

/** The OTLP exporter, logging when export starts failing and when it recovers (not every failed batch). */
class LoggedExporter implements SpanExporter {
  private failing = false;

  constructor(private readonly inner: OTLPTraceExporter, private readonly url: string, private readonly log: Log) {}

  export(spans: ReadableSpan[], done: Parameters<SpanExporter["export"]>[1]): void {
    this.inner.export(spans, (result) => {
      // 0 is ExportResultCode.SUCCESS (@opentelemetry/core, not a dependency of ours).
      if (result.code !== 0 && !this.failing) {
        this.failing = true;
        this.log.warn({ url: this.url, err: result.error }, "trace export to the OTLP collector failed; spans are dropped until it answers");
      } else if (result.code === 0 && this.failing) {
        this.failing = false;
        this.log.info({ url: this.url }, "trace export to the OTLP collector works again");
      }
      done(result);
    });
  }

  shutdown = () => this.inner.shutdown();
  forceFlush = () => this.inner.forceFlush();
}

/** An app's tracer, its in-memory ring and, with an endpoint, its OTLP export. */
export class Tracing {
  readonly tracer: Tracer;
  readonly ring: RingSpanProcessor;
  readonly exportUrl: string | undefined;
  private readonly provider: BasicTracerProvider;

  constructor(opts: TracingOptions) {
    this.ring = new RingSpanProcessor(opts.ringCapacity);
    const processors: SpanProcessor[] = [this.ring];
    if (opts.otlpEndpoint) {
      this.exportUrl = tracesUrl(opts.otlpEndpoint);
      const timeoutMillis = opts.exportTimeoutMs ?? 5000;
      const exporter = new OTLPTraceExporter({ url: this.exportUrl, timeoutMillis });
      // A bounded queue: past 2048 waiting spans (a collector too slow or down) new ones are dropped, not held.
      processors.push(
        new BatchSpanProcessor(new LoggedExporter(exporter, this.exportUrl, opts.log), {
          maxQueueSize: 2048,
          maxExportBatchSize: 512,
          scheduledDelayMillis: opts.exportDelayMs ?? 1000,
          exportTimeoutMillis: timeoutMillis,
        }),
      );
    }
    this.provider = new BasicTracerProvider({
      resource: defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName, [ATTR_SERVICE_VERSION]: opts.serviceVersion })),
      sampler: recordAllSampler,
      spanProcessors: processors,
    });
    this.tracer = this.provider.getTracer("inferno", opts.serviceVersion);
  }

  /**
   * Exports what is queued and stops, within `boundMs` whatever the collector does (unreachable, slow):
   * closing the server never waits on it longer, and an export failure never throws.
   */
  async close(boundMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, boundMs);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => {}), bound]);
    clearTimeout(timer);
  }
}
