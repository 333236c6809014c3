import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { OutputFormat, SamplingParams, TokenLogprob } from "../../core/generation.js";
import { checkMaxTokens, type GenerationLimits } from "../../services/generation.js";
import { samplingFrom, sharedSamplingFields, stopList } from "../sampling.js";

export const openaiId = (prefix: string) => `${prefix}-${randomBytes(12).toString("base64url")}`;
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Sampling fields OpenAI defines, plus llama.cpp's extras that llama-server also accepts. */
export const openaiSamplingFields = {
  ...sharedSamplingFields,
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).nullish(),
  stop: z.union([z.string().max(256), z.array(z.string().min(1).max(256)).max(16)]).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  user: z.string().max(256).nullish(),
};

type SamplingBody = {
  [K in keyof typeof openaiSamplingFields]?: z.infer<(typeof openaiSamplingFields)[K]>;
};

export function maxTokensOf(requested: number | null | undefined, limits: GenerationLimits): number {
  return checkMaxTokens(requested ?? limits.defaultMaxTokens, limits);
}

export function samplingOf(body: SamplingBody, choice = 0): SamplingParams {
  // Several choices from one seed must still differ, so each choice gets its own seed.
  const seed = body.seed == null ? undefined : (body.seed + choice) >>> 0;
  // Unset fields take the server's defaults, as llama-server does, rather than OpenAI's (temperature 1, no top-k).
  return samplingFrom(body, seed);
}

export const stopsOf = stopList;

export const responseFormatField = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({ name: z.string().max(64).optional(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() }),
    }),
  ])
  .nullish();

export function formatOf(rf: z.infer<typeof responseFormatField>): OutputFormat | undefined {
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return { type: "json" };
  return rf.json_schema.schema ? { type: "json_schema", schema: rf.json_schema.schema } : { type: "json" };
}

/** OpenAI's chat logprobs item for one token. */
export const chatLogprob = (t: TokenLogprob) => ({
  token: t.token,
  logprob: t.logprob,
  bytes: t.bytes,
  top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes })),
});
