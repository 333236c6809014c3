// The spans of what the registry reports (queue wait, model load and unload, generations, tensor runs).
// Every event arrives once its work is over, with its duration: the spans are drawn back in time from
// the event's arrival, so nothing is traced while tokens are produced.
import { ROOT_CONTEXT, trace, type Context, type HrTime, type Tracer } from "@opentelemetry/api";
import type { RegistryEvent } from "../registry/model-registry.js";

// GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/), spelt out here: the
// incubating entry of @opentelemetry/semantic-conventions marks them deprecated, moved to their own repository.
export const GEN_AI = {
  operation: "gen_ai.operation.name",
  provider: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  maxTokens: "gen_ai.request.max_tokens",
  temperature: "gen_ai.request.temperature",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  cachedInputTokens: "gen_ai.usage.cache_read.input_tokens",
  finishReasons: "gen_ai.response.finish_reasons",
  /** Seconds from the request to the first generated token. */
  timeToFirstChunk: "gen_ai.response.time_to_first_chunk",
} as const;

/**
 * A performance.now() time as the spans' HrTime, by one mapping for every span (the SDK's own, given a
 * number, anchors each span to Date.now() apart, so adjacent spans could disagree by a millisecond).
 */
export function hrTimeOf(perfMs: number): HrTime {
  const ms = performance.timeOrigin + perfMs;
  const sec = Math.floor(ms / 1000);
  return [sec, Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6))];
}

const eventNames: { [K in RegistryEvent["kind"]]: string } = {
  generation: "generation",
  queue: "queue.wait",
  load: "model.load",
  unload: "model.unload",
  "tensor-run": "tensor.run",
};

/**
 * Records the spans of one registry event under `parent` (the request's span), or as a trace of its
 * own outside any request (a keep-alive unload, a batch item). `now` is the event's arrival
 * (performance.now()), the end of what it reports.
 */
export function recordEventSpans(tracer: Tracer, parent: Context | undefined, event: RegistryEvent, now = performance.now()): void {
  const ctx = parent ?? ROOT_CONTEXT;
  const name = eventNames[event.kind];
  switch (event.kind) {
    case "generation":
      return recordGeneration(tracer, ctx, event, now);
    case "tensor-run":
      tracer
        .startSpan(name, { startTime: hrTimeOf(now - event.ms), attributes: { "inferno.model": event.model, "inferno.tensor.batch": event.batch, "inferno.runtime": "onnxruntime" } }, ctx)
        .end(hrTimeOf(now));
      return;
    case "unload":
      tracer.startSpan(name, { startTime: hrTimeOf(now - event.ms), attributes: { "inferno.model": event.model, "inferno.unload.reason": event.reason } }, ctx).end(hrTimeOf(now));
      return;
    default:
      tracer.startSpan(name, { startTime: hrTimeOf(now - event.ms), attributes: { "inferno.model": event.model } }, ctx).end(hrTimeOf(now));
  }
}

/**
 * A generation as three spans: `generation` (from the end of the queue wait to the last token) with the
 * GenAI attributes, and its children `prefill` (prompt processing, up to the first token) and `decode`.
 */
function recordGeneration(tracer: Tracer, ctx: Context, event: Extract<RegistryEvent, { kind: "generation" }>, end: number): void {
  const r = event.result;
  const facts = event.request;
  // The result's times count from before the wait for a sequence; the spans start after it.
  const started = end - r.totalMs;
  const firstAt = Math.min(end, started + r.timeToFirstTokenMs);
  const from = Math.min(firstAt, started + (facts?.queueMs ?? 0));
  const span = tracer.startSpan(
    "generation",
    {
      startTime: hrTimeOf(from),
      attributes: {
        [GEN_AI.operation]: facts?.operation ?? "text_completion",
        [GEN_AI.provider]: "llama.cpp",
        [GEN_AI.requestModel]: event.model,
        [GEN_AI.responseModel]: event.model,
        ...(facts ? { [GEN_AI.maxTokens]: facts.maxTokens, [GEN_AI.temperature]: facts.temperature } : {}),
        [GEN_AI.inputTokens]: r.promptTokens,
        [GEN_AI.outputTokens]: r.completionTokens,
        [GEN_AI.cachedInputTokens]: r.cachedPromptTokens,
        [GEN_AI.finishReasons]: [r.finishReason],
        ...(r.completionTokens > 0 ? { [GEN_AI.timeToFirstChunk]: r.timeToFirstTokenMs / 1000 } : {}),
      },
    },
    ctx,
  );
  const inner = trace.setSpan(ctx, span);
  // Without a generated token the whole generation was prompt processing.
  const prefillEnd = r.completionTokens > 0 ? firstAt : end;
  tracer
    .startSpan("prefill", { startTime: hrTimeOf(from), attributes: { [GEN_AI.inputTokens]: r.promptTokens, "inferno.prefill.evaluated_tokens": r.promptTokens - r.cachedPromptTokens } }, inner)
    .end(hrTimeOf(prefillEnd));
  if (r.completionTokens > 0) {
    tracer.startSpan("decode", { startTime: hrTimeOf(firstAt), attributes: { [GEN_AI.outputTokens]: r.completionTokens } }, inner).end(hrTimeOf(end));
  }
  span.end(hrTimeOf(end));
}
