import type { LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import { ResourcePool } from "../../core/async-queue.js";
import type { GenerateRequest, GenerationResult, GenerationStream, FinishReason } from "../../core/generation.js";
import { StopMatcher } from "../../core/stop-matcher.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { LoadedModel } from "../loaded-model.js";
import { TokenTextDecoder } from "./token-text-decoder.js";

/** How many recent tokens the repeat/presence/frequency penalties look at (llama.cpp's default). */
const PENALTY_WINDOW = 64;

export interface LlamaTextModelOptions {
  threads: number;
  loadTimeMs: number;
  options: Record<string, unknown>;
}

/** A loaded GGUF model: one context whose sequences serve concurrent requests, batched by node-llama-cpp. */
export class LlamaTextModel implements LoadedModel {
  readonly type = "gguf" as const;
  readonly capabilities = ["text-generation", "embeddings"] as const;
  readonly loadTimeMs: number;
  readonly options: Readonly<Record<string, unknown>>;
  private readonly pool: ResourcePool<LlamaContextSequence>;
  private active = 0;
  private generated = 0;
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  private embedChain: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly settings: LlamaTextModelOptions,
  ) {
    this.loadTimeMs = settings.loadTimeMs;
    this.options = Object.freeze({ ...settings.options });
    const sequences: LlamaContextSequence[] = [];
    while (context.sequencesLeft > 0) sequences.push(context.getSequence());
    this.pool = new ResourcePool(sequences);
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  get parallel(): number {
    return this.context.totalSequences;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Tokens generated over the model's lifetime (all requests). */
  get generatedTokens(): number {
    return this.generated;
  }

  /** Requests waiting for a free sequence. */
  get queued(): number {
    return this.pool.waiting;
  }

  memoryUsageBytes(): number {
    const ctx = this.context.memoryUsage;
    return this.model.size + ctx.ram + ctx.vram;
  }

  /** Prompt tokens as the model will see them (with BOS when the model wants one). */
  tokenize(text: string): Token[] {
    const tokens = this.model.tokenize(text, false);
    const bos = this.model.tokens.bos;
    return bos != null && this.model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
  }

  /**
   * Validates the request, waits for a free sequence, and returns the token stream. Everything that can
   * be refused is refused here, before the caller commits to a streamed response.
   */
  async start(req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
    if (this.disposed) throw new InfernoError("MODEL_NOT_LOADED", `model ${req.model} was unloaded`);
    const started = performance.now();
    const promptTokens = this.tokenize(req.prompt);
    if (promptTokens.length === 0) throw new InfernoError("INVALID_REQUEST", "prompt is empty", undefined, { param: "prompt" });
    if (promptTokens.length >= this.contextSize) {
      throw new InfernoError(
        "CONTEXT_LENGTH_EXCEEDED",
        `prompt is ${promptTokens.length} tokens; the context holds ${this.contextSize}`,
        { prompt_tokens: promptTokens.length, context_size: this.contextSize },
        { param: "prompt" },
      );
    }
    this.active++;
    let sequence: LlamaContextSequence;
    try {
      sequence = await this.pool.acquire(signal, (free) => longestPrefixIndex(free, promptTokens));
    } catch (err) {
      this.active--;
      throw err;
    }
    return this.run(req, sequence, promptTokens, signal, started);
  }

  private async *run(
    req: GenerateRequest,
    sequence: LlamaContextSequence,
    promptTokens: Token[],
    signal: AbortSignal,
    started: number,
  ): GenerationStream {
    let iterator: AsyncGenerator<Token, void, void> | undefined;
    try {
      // Reuse the part of the prompt this sequence already holds; at least one token is evaluated to sample from.
      const keep = Math.min(sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
      if (sequence.nextTokenIndex > keep) {
        await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
      }
      const budget = Math.min(req.maxTokens, this.contextSize - promptTokens.length);
      const { sampling } = req;
      const history = promptTokens.slice(-PENALTY_WINDOW);
      const penalize = sampling.repeatPenalty !== 1 || sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
      iterator = sequence.evaluate(promptTokens.slice(keep), {
        temperature: sampling.temperature,
        topK: sampling.topK,
        topP: sampling.topP,
        minP: sampling.minP,
        ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
        ...(penalize
          ? {
              repeatPenalty: {
                punishTokens: () => history,
                maxPunishTokens: PENALTY_WINDOW,
                penalty: sampling.repeatPenalty,
                presencePenalty: sampling.presencePenalty,
                frequencyPenalty: sampling.frequencyPenalty,
              },
            }
          : {}),
      });
      const decoder = new TokenTextDecoder(this.model, promptTokens);
      const stops = new StopMatcher(req.stop);
      let text = "";
      let index = 0;
      let completionTokens = 0;
      let firstTokenAt = 0;
      let finishReason: FinishReason = "stop";
      let stopped = false;
      for (;;) {
        if (signal.aborted) break;
        if (completionTokens >= budget) {
          finishReason = "length";
          break;
        }
        const step = await iterator.next();
        if (step.done) break; // end-of-generation token
        if (completionTokens === 0) firstTokenAt = performance.now();
        completionTokens++;
        this.generated++;
        history.push(step.value);
        if (history.length > PENALTY_WINDOW * 2) history.splice(0, history.length - PENALTY_WINDOW);
        const piece = stops.push(decoder.push(step.value));
        if (piece.emit) {
          text += piece.emit;
          yield { text: piece.emit, index: index++ };
        }
        if (piece.stopped) {
          stopped = true;
          break;
        }
      }
      if (!stopped) {
        const tail = stops.push(decoder.flush());
        const rest = tail.emit + (tail.stopped ? "" : stops.flush());
        if (rest) {
          text += rest;
          yield { text: rest, index: index++ };
        }
      }
      const cachedPromptTokens = keep;
      const now = performance.now();
      const result: GenerationResult = {
        text,
        finishReason,
        promptTokens: promptTokens.length,
        completionTokens,
        cachedPromptTokens,
        timeToFirstTokenMs: firstTokenAt ? firstTokenAt - started : now - started,
        totalMs: now - started,
      };
      return result;
    } finally {
      await iterator?.return();
      this.pool.release(sequence);
      this.active--;
    }
  }

  private get embeddingContextSize(): number {
    return Math.min(this.contextSize, this.model.trainContextSize);
  }

  /** One embedding per input, computed one at a time on a lazily created embedding context. */
  async embed(inputs: string[], signal?: AbortSignal): Promise<{ vectors: number[][]; promptTokens: number }> {
    if (this.disposed) throw new InfernoError("MODEL_NOT_LOADED", "model was unloaded");
    this.active++;
    const run = this.embedChain.then(async () => {
      this.embedding ??= this.model.createEmbeddingContext({
        contextSize: this.embeddingContextSize,
        threads: this.settings.threads,
      });
      const ctx = await this.embedding;
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const [i, input] of inputs.entries()) {
        signal?.throwIfAborted();
        const tokens = this.tokenize(input);
        if (tokens.length > this.embeddingContextSize) {
          throw new InfernoError(
            "CONTEXT_LENGTH_EXCEEDED",
            `input ${i} is ${tokens.length} tokens; the embedding context holds ${this.embeddingContextSize}`,
            { index: i, tokens: tokens.length, context_size: this.embeddingContextSize },
            { param: "input" },
          );
        }
        promptTokens += tokens.length;
        const embedding = await ctx.getEmbeddingFor(tokens);
        vectors.push([...embedding.vector]);
      }
      return { vectors, promptTokens };
    });
    this.embedChain = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      this.active--;
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.embedding) await (await this.embedding.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** Index of the free sequence sharing the longest prefix with the prompt (prompt-cache reuse). */
function longestPrefixIndex(free: LlamaContextSequence[], prompt: Token[]): number {
  let best = 0;
  let bestLen = -1;
  free.forEach((seq, i) => {
    const len = seq.nextTokenIndex === 0 ? 0 : seq.compareContextTokens(prompt).firstDifferentIndex;
    if (len > bestLen) {
      best = i;
      bestLen = len;
    }
  });
  return best;
}
