// A short history of token throughput for people (the web console's Status view), beside the Prometheus
// counters for machines: Prometheus keeps history only if something scrapes it, and a page should not have to.
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

/** Seconds per bucket and buckets kept: ten minutes in 10-second steps. */
export const BUCKET_SECONDS = 10;
export const BUCKETS = 60;

interface Bucket {
  /** Unix seconds at the bucket's start (a multiple of BUCKET_SECONDS); 0 while unused. */
  start: number;
  generated: number;
  prompt: number;
  generations: number;
}

/** A ring of per-10-second token counts over the last 10 minutes; `now` (ms) is injectable for tests. */
export class TokenHistory {
  private readonly ring: Bucket[] = Array.from({ length: BUCKETS }, () => ({ start: 0, generated: 0, prompt: 0, generations: 0 }));

  constructor(private readonly now: () => number = Date.now) {}

  private bucketStart(ms: number): number {
    const s = Math.floor(ms / 1000);
    return s - (s % BUCKET_SECONDS);
  }

  /** Counts a finished generation in the bucket of the current time. */
  record(promptTokens: number, generatedTokens: number): void {
    const start = this.bucketStart(this.now());
    const b = this.ring[(start / BUCKET_SECONDS) % BUCKETS]!;
    if (b.start !== start) Object.assign(b, { start, generated: 0, prompt: 0, generations: 0 });
    b.generated += generatedTokens;
    b.prompt += promptTokens;
    b.generations += 1;
  }

  /** Every bucket of the window, oldest first, the current (partial) one last; buckets with no work are zeros. */
  buckets(): Array<{ start: number; generated_tokens: number; prompt_tokens: number; generations: number }> {
    const current = this.bucketStart(this.now());
    return Array.from({ length: BUCKETS }, (_, i) => {
      const start = current - (BUCKETS - 1 - i) * BUCKET_SECONDS;
      const b = this.ring[(start / BUCKET_SECONDS) % BUCKETS]!;
      const live = b.start === start;
      return { start, generated_tokens: live ? b.generated : 0, prompt_tokens: live ? b.prompt : 0, generations: live ? b.generations : 0 };
    });
  }

  /** Generated tokens per second over the last `seconds` (whole buckets, the current partial one included). */
  rate(seconds = 60): number {
    const n = Math.max(1, Math.round(seconds / BUCKET_SECONDS));
    const recent = this.buckets().slice(-n);
    const elapsed = (n - 1) * BUCKET_SECONDS + (this.now() / 1000 - recent.at(-1)!.start);
    return recent.reduce((sum, b) => sum + b.generated_tokens, 0) / Math.max(elapsed, 1);
  }
}

export const summaryQuery = z.object({}).strict();

export const summaryResponse = z.object({
  bucket_seconds: z.number(),
  in_flight: z.number().int(),
  queue_depth: z.number().int(),
  queues: z.array(z.object({ model: z.string(), queued: z.number().int() })),
  models_loaded: z.number().int(),
  /** Generated tokens per second over the last minute. */
  tokens_per_second: z.number(),
  history: z.array(z.object({ start: z.number().int(), generated_tokens: z.number().int(), prompt_tokens: z.number().int(), generations: z.number().int() })),
});

export interface SummarySources {
  history: TokenHistory;
  /** Requests being served now (the metrics plugin's gauge). */
  inFlight: () => Promise<number>;
  /** Requests waiting per loaded model. */
  queues: () => Array<{ model: string; queued: number }>;
  modelsLoaded: () => number;
}

/** `GET /metrics/summary` (any authenticated user, like /metrics): load now and token throughput over the last 10 minutes. */
export function summaryRoute(app: FastifyInstance, sources: SummarySources): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    "/metrics/summary",
    { schema: { querystring: summaryQuery, response: { 200: summaryResponse } } },
    async () => {
      const queues = sources.queues();
      return {
        bucket_seconds: BUCKET_SECONDS,
        in_flight: await sources.inFlight(),
        queue_depth: queues.reduce((n, q) => n + q.queued, 0),
        queues,
        models_loaded: sources.modelsLoaded(),
        tokens_per_second: Math.round(sources.history.rate(60) * 10) / 10,
        history: sources.history.buckets(),
      };
    },
  );
}
