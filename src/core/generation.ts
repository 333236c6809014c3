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

/** The one internal text-generation request every API dialect converts to. */
export interface GenerateRequest {
  model: string;
  prompt: string;
  maxTokens: number;
  stop: string[];
  sampling: SamplingParams;
}

export type FinishReason = "stop" | "length";

/** A piece of generated text, emitted as soon as it is safe (whole UTF-8 characters, not part of a stop string). */
export interface GenerationChunk {
  text: string;
  /** Position of this chunk in the stream, from 0. */
  index: number;
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
