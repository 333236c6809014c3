import { z } from "zod";
import { usageOf, type FinishReason, type GenerateRequest, type GenerationResult, type GenerationStream, type TokenLogprob } from "../../core/generation.js";
import { firstEager, mapGeneration } from "../../core/stream-utils.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { GenerationLimits } from "../native.js";
import { lengthControlsOf } from "../sampling.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { TextModel } from "../../runtimes/llama/gguf-text-model.js";
import { startGeneration, textModel } from "../../services/generation.js";
import {
  formatOf, maxTokensOf, nowSeconds, openaiId, openaiSamplingFields, responseFormatField, samplingOf, stopsOf,
} from "./common.js";

/** More prompts × `n` than this in one request would hold the queue for everyone else. */
const MAX_CHOICES = 64;

const text = z.string().max(1_000_000);
const tokenIds = z.array(z.number().int().min(0)).min(1).max(1_000_000);

export const completionBody = z.object({
  ...openaiSamplingFields,
  prompt: z.union([text, z.array(text).min(1).max(MAX_CHOICES), tokenIds, z.array(tokenIds).min(1).max(MAX_CHOICES)], {
    error: "prompt must be a string, an array of strings, an array of token ids or an array of token-id arrays, none empty",
  }),
  suffix: text.nullish(),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  best_of: z.number().int().min(1).max(16).nullish(),
  // Not an OpenAI completions field, but llama-server accepts it and so do we.
  response_format: responseFormatField,
});
export type CompletionBody = z.infer<typeof completionBody>;

/** What preparing prompts needs from the loaded model: plain tokens (no BOS), text of tokens, infill markers. */
export interface PromptTools {
  tokenize(text: string): number[];
  detokenize(ids: number[]): string;
  bos: number[];
  infill: { prefix: number; suffix: number; middle: number } | undefined;
}

/** One prompt as the model will see it, and the text `echo` prepends to its choices. */
export interface PreparedPrompt {
  input: string | number[];
  echo: string;
}

/** The prompts of a request, in order: a string and a token-id array are one prompt each. */
export function promptsOf(prompt: CompletionBody["prompt"]): Array<string | number[]> {
  if (typeof prompt === "string") return [prompt];
  if (typeof prompt[0] === "number") return [prompt as number[]];
  return prompt as Array<string | number[]>;
}

/** Tokenizer pieces this dialect needs, from the loaded model. */
export const promptTools = (model: TextModel): PromptTools => ({
  tokenize: (text) => model.tokenizePlain(text),
  detokenize: (ids) => model.detokenize(ids),
  bos: model.bosTokens,
  infill: model.infillTokens,
});

/** Does preparing the prompts need the model (token prompts to echo, or infill)? */
export const needsPromptTools = (body: CompletionBody) =>
  !!body.suffix || (body.echo === true && promptsOf(body.prompt).some((p) => typeof p !== "string"));

/** Refuses combinations the conversion cannot honour, before anything is queued. */
export function checkCompletionBody(body: CompletionBody, limits: GenerationLimits): void {
  const n = body.n ?? 1;
  if (body.best_of != null && body.best_of !== n) {
    throw new InfernoError("INVALID_REQUEST", `best_of must equal n (${n}): choosing the best of several completions is not supported`, undefined, {
      param: "best_of",
    });
  }
  const choices = promptsOf(body.prompt).length * n;
  if (choices > MAX_CHOICES) {
    throw new InfernoError("INVALID_REQUEST", `prompts × n is ${choices}; at most ${MAX_CHOICES} choices per request`, undefined, {
      param: "n",
    });
  }
  if (body.echo && body.logprobs != null) {
    throw new InfernoError("UNSUPPORTED_OPERATION", "logprobs of prompt tokens (echo with logprobs) are not supported", undefined, {
      param: "echo",
    });
  }
  lengthControlsOf(body, maxTokensOf(body.max_tokens, limits));
}

/** Each prompt as the model sees it: with `suffix`, an infill prompt built from the model's markers. */
export function preparePrompts(body: CompletionBody, tools: PromptTools | undefined): PreparedPrompt[] {
  return promptsOf(body.prompt).map((p) => {
    const echo = !body.echo ? "" : typeof p === "string" ? p : tools!.detokenize(p);
    if (!body.suffix) return { input: p, echo };
    const fim = tools!.infill;
    if (!fim) throw new InfernoError("UNSUPPORTED_OPERATION", "this model does not support suffix (no infill tokens)", undefined, { param: "suffix" });
    const prefix = typeof p === "string" ? tools!.tokenize(p) : p;
    return { input: [...tools!.bos, fim.prefix, ...prefix, fim.suffix, ...tools!.tokenize(body.suffix), fim.middle], echo };
  });
}

/** The internal request for one choice (`choice` within its prompt, so each prompt's choices get seeds seed, seed+1, ...). */
export function toGenerateRequest(body: CompletionBody, limits: GenerationLimits, prompt: PreparedPrompt, choice: number): GenerateRequest {
  const format = formatOf(body.response_format);
  const maxTokens = maxTokensOf(body.max_tokens, limits);
  return {
    model: body.model,
    prompt: prompt.input,
    maxTokens,
    stop: stopsOf(body.stop),
    sampling: samplingOf(body, choice),
    ...lengthControlsOf(body, maxTokens),
    ...(format ? { format } : {}),
    ...(body.logprobs != null ? { logprobs: body.logprobs } : {}),
  };
}

/** OpenAI's legacy logprobs object: parallel lists, `text_offset` in characters from the start of the choice's text. */
export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

/** Builds legacy logprobs chunk by chunk, carrying the text offset across chunks of one choice. */
export class LegacyLogprobsBuilder {
  private offset = 0;

  of(entries: readonly TokenLogprob[]): LegacyLogprobs {
    const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const e of entries) {
      // The sampled token is always listed, so there may be logprobs + 1 entries (as OpenAI documents).
      const top: Record<string, number> = {};
      for (const alt of e.top) if (!(alt.token in top)) top[alt.token] = alt.logprob;
      if (!(e.token in top)) top[e.token] = e.logprob;
      out.tokens.push(e.token);
      out.token_logprobs.push(e.logprob);
      out.top_logprobs.push(top);
      out.text_offset.push(this.offset);
      // Code points, not UTF-16 units: offsets index the text as Python clients see it.
      this.offset += [...e.token].length;
    }
    return out;
  }
}

/** One `choices[]` entry, whole or as a streamed piece (`finish_reason` null until the last). */
export const completionChoice = (index: number, text: string, logprobs: LegacyLogprobs | null, finishReason: FinishReason | null) => ({
  text,
  index,
  logprobs,
  finish_reason: finishReason,
});

/** Non-streamed: one choice, its text after the echoed prompt. */
export async function collectCompletion(gen: GenerationStream, index: number, echo: string, withLogprobs: boolean) {
  const tokens: TokenLogprob[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) {
      const logprobs = withLogprobs ? new LegacyLogprobsBuilder().of(tokens) : null;
      return { result: step.value, choice: completionChoice(index, echo + step.value.text, logprobs, step.value.finishReason) };
    }
    if (step.value.logprobs) tokens.push(...step.value.logprobs);
  }
}

/** Usage of a request whose choice i is choice i % n of prompt i / n: each distinct prompt is counted once. */
export const completionUsage = (prompts: number, n: number, results: GenerationResult[]) =>
  usageOf(Array.from({ length: prompts }, (_, p) => results[p * n]!.promptTokens).reduce((a, b) => a + b, 0), results);

/**
 * Non-streamed: waits for every choice (`start(i)` gives choice i's generation; choice i is choice
 * i % n of prompt i / n, as OpenAI numbers them) and builds the `text_completion` object, as
 * `POST /v1/completions` and completions batch items answer it.
 */
export async function textCompletionOf(
  body: CompletionBody,
  prompts: PreparedPrompt[],
  start: (i: number) => Promise<GenerationStream>,
  id = openaiId("cmpl"),
  created = nowSeconds(),
) {
  const n = body.n ?? 1;
  const withLogprobs = body.logprobs != null;
  const outs = await Promise.all(
    Array.from({ length: prompts.length * n }, (_, i) =>
      start(i).then((g) => collectCompletion(g, i, prompts[Math.floor(i / n)]!.echo, withLogprobs)),
    ),
  );
  const results = outs.map((o) => o.result);
  const response = {
    id,
    object: "text_completion" as const,
    created,
    model: body.model,
    system_fingerprint: null,
    choices: outs.map((o) => o.choice),
    usage: completionUsage(prompts.length, n, results),
  };
  return { response, results };
}

/** Streamed: the echoed prompt (if any), a piece per chunk, then an empty piece with the finish reason. */
export async function* completionPieces(
  gen: GenerationStream,
  index: number,
  echo: string,
  withLogprobs: boolean,
  onResult: (r: GenerationResult) => void,
): AsyncGenerator<ReturnType<typeof completionChoice>, void, void> {
  const lp = withLogprobs ? new LegacyLogprobsBuilder() : undefined;
  try {
    if (echo) yield completionChoice(index, echo, lp?.of([]) ?? null, null);
    yield* mapGeneration(
      gen,
      (c) => completionChoice(index, c.text, lp?.of(c.logprobs ?? []) ?? null, null),
      (r) => {
        onResult(r);
        return [completionChoice(index, "", lp?.of([]) ?? null, r.finishReason)];
      },
    );
  } finally {
    // A reader that leaves during the echo never reached mapGeneration, which would have freed the sequence.
    await gen.return(undefined as never);
  }
}

/**
 * Checks a completions body and starts its choices, the first at once (so a refusal comes before a
 * response starts): choice i is choice i % n of prompt i / n, as OpenAI numbers them. The live route and
 * batch lines both start here.
 */
export async function startCompletions(registry: ModelRegistry, body: CompletionBody, limits: GenerationLimits, signal: AbortSignal) {
  checkCompletionBody(body, limits);
  const n = body.n ?? 1;
  const prompts = preparePrompts(body, needsPromptTools(body) ? promptTools(await textModel(registry, body.model)) : undefined);
  const promptOf = (i: number) => prompts[Math.floor(i / n)]!;
  const lazy = await firstEager((i) => startGeneration(registry, toGenerateRequest(body, limits, promptOf(i), i % n), signal));
  return { n, prompts, total: prompts.length * n, promptOf, lazy };
}
