/** Sampling settings shared by every dialect (native, OpenAI, Ollama, WebSocket). */
export interface SamplingParams {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repeatPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Fixed seed for reproducible sampling; random when absent. */
  seed?: number;
}

/** Output constrained by a grammar: any JSON value, or JSON matching a schema. */
export type OutputFormat = { type: "json" } | { type: "json_schema"; schema: unknown };

/** The one internal text-generation request every API dialect converts to. */
export interface GenerateRequest {
  model: string;
  /** Text (tokenized with BOS when the model wants one), or token ids used as they are. */
  prompt: string | number[];
  maxTokens: number;
  stop: string[];
  sampling: SamplingParams;
  format?: OutputFormat;
  /** When set, every chunk carries the chosen tokens' log-probabilities and this many alternatives (0-20). */
  logprobs?: number;
  /** Batch work waits behind live requests for a sequence. */
  priority?: "live" | "batch";
  /** End-of-generation tokens are never sampled: generation runs to maxTokens, a full context or a stop string. */
  ignoreEos?: boolean;
  /** End-of-generation tokens are never sampled, nor stop strings looked for, within the first this many tokens. */
  minTokens?: number;
}

/** A generated token with its log-probability and the most likely alternatives. */
export interface TokenLogprob {
  token: string;
  bytes: number[];
  logprob: number;
  top: Array<{ token: string; bytes: number[]; logprob: number }>;
}

export type FinishReason = "stop" | "length";

/** A piece of generated text, emitted as soon as it is safe (whole UTF-8 characters, not part of a stop string). */
export interface GenerationChunk {
  text: string;
  /** Position of this chunk in the stream, from 0. */
  index: number;
  /** The tokens whose text this chunk carries, when the request asked for logprobs. */
  logprobs?: TokenLogprob[];
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from a sequence's cache rather than evaluated again. */
  cachedPromptTokens: number;
  /** Milliseconds from the start of generation to the first generated token. */
  timeToFirstTokenMs: number;
  totalMs: number;
}

/** Generation as an async stream of chunks whose return value is the final result. */
export type GenerationStream = AsyncGenerator<GenerationChunk, GenerationResult, void>;

/** Token usage as every dialect reports it: the prompt once, the completions of all its choices summed. */
export function usageOf(promptTokens: number, results: readonly GenerationResult[]) {
  const completion = results.reduce((n, r) => n + r.completionTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

export const defaultSampling: SamplingParams = {
  temperature: 0.8,
  topP: 0.95,
  topK: 40,
  minP: 0.05,
  repeatPenalty: 1.0,
  presencePenalty: 0,
  frequencyPenalty: 0,
};

/** Drains a generation stream into its final result. */
export async function collectGeneration(stream: GenerationStream): Promise<GenerationResult> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
  }
}
