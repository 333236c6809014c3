import type { LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import { ResourcePool, type PoolLimits } from "../../core/async-queue.js";
import type { GenerateRequest, GenerationStream } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import type { LoadedModel } from "../loaded-model.js";
import { ChatRenderer } from "./chat-renderer.js";
import { checkEogBan, eogBan, wantsEogBan } from "./eog-ban.js";
import { eraseFrom, generationLoop, type LoopInput } from "./generation-loop.js";
import { GrammarCache } from "./grammar-cache.js";

export interface LlamaTextModelOptions {
  threads: number;
  /** Where the weights are: RAM, and GPU memory for the layers offloaded. */
  weights: MemoryUse;
  /** Bounds on the queue of requests waiting for a sequence. */
  queue?: PoolLimits;
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
  private renderer: ChatRenderer | undefined;
  private readonly grammars: GrammarCache;

  constructor(
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly settings: LlamaTextModelOptions,
  ) {
    this.loadTimeMs = settings.loadTimeMs;
    this.options = Object.freeze({ ...settings.options });
    const sequences: LlamaContextSequence[] = [];
    while (context.sequencesLeft > 0) sequences.push(context.getSequence());
    this.pool = new ResourcePool(sequences, settings.queue);
    this.grammars = new GrammarCache(model.llama);
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

  memoryUsage(): MemoryUse {
    const ctx = this.context.memoryUsage;
    return { ram: this.settings.weights.ram + ctx.ram, vram: this.settings.weights.vram + ctx.vram };
  }

  /** Prompt tokens as the model will see them (with BOS when the model wants one). */
  tokenize(text: string): Token[] {
    return [...this.bosTokens, ...this.model.tokenize(text, false)];
  }

  /** Number of tokens in the vocabulary (the token list in the GGUF metadata, else the embedding rows). */
  get vocabularySize(): number {
    const list = (this.model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
    if (Array.isArray(list)) return list.length;
    const embd = this.model.fileInfo.fullTensorInfo?.find((t) => t.name === "token_embd.weight");
    return Number(embd?.dimensions[1] ?? Number.MAX_SAFE_INTEGER);
  }

  /** Token ids given by a client, checked against the vocabulary. */
  private checkTokens(ids: number[]): Token[] {
    const vocab = this.vocabularySize;
    const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== -1) {
      throw new InfernoError("INVALID_REQUEST", `token id ${ids[bad]} at position ${bad} is not in the vocabulary (0-${vocab - 1})`, undefined, {
        param: "prompt",
      });
    }
    return ids as Token[];
  }

  /** Tokens of text as it appears inside a prompt (no BOS). */
  tokenizePlain(text: string): Token[] {
    return this.model.tokenize(text, false);
  }

  /** Text of client-given token ids (checked); a leading BOS is skipped so SentencePiece drops its space prefix as for text. */
  detokenize(ids: number[]): string {
    const tokens = this.checkTokens(ids);
    const bos = this.model.tokens.bos;
    return this.model.detokenize(bos != null && tokens[0] === bos ? tokens.slice(1) : tokens);
  }

  /** BOS as the model wants it at the start of a prompt ([] when it wants none). */
  get bosTokens(): Token[] {
    const bos = this.model.tokens.bos;
    return bos != null && this.model.tokens.shouldPrependBosToken ? [bos] : [];
  }

  /** The model's fill-in-the-middle markers, when it has all three. */
  get infillTokens(): { prefix: Token; suffix: Token; middle: Token } | undefined {
    const { prefix, suffix, middle } = this.model.tokens.infill;
    return prefix != null && suffix != null && middle != null ? { prefix, suffix, middle } : undefined;
  }

  /** Length of the vectors `embed` returns. */
  get embeddingSize(): number {
    return this.model.embeddingVectorSize;
  }

  /** Longest input `embed` accepts, in tokens. */
  get embeddingContextSize(): number {
    return Math.min(this.contextSize, this.model.trainContextSize);
  }

  /** The model's chat template, resolved once per model (a registration may choose another). */
  get chat(): ChatRenderer {
    this.renderer ??= new ChatRenderer(this.model, typeof this.options.chat_template === "string" ? this.options.chat_template : "auto");
    return this.renderer;
  }

  /**
   * Validates the request, waits for a free sequence, and returns the token stream. Everything that can
   * be refused is refused here, before the caller commits to a streamed response.
   */
  async start(req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
    if (this.disposed) throw new InfernoError("MODEL_NOT_LOADED", `model ${req.model} was unloaded`);
    checkEogBan(req);
    // Counted from the first await on, so an idle timer never unloads a model a request is about to use.
    this.active++;
    try {
      const started = performance.now();
      const promptTokens = typeof req.prompt === "string" ? this.tokenize(req.prompt) : this.checkTokens(req.prompt);
      if (promptTokens.length === 0) throw new InfernoError("INVALID_REQUEST", "prompt is empty", undefined, { param: "prompt" });
      if (promptTokens.length >= this.contextSize) {
        throw new InfernoError(
          "CONTEXT_LENGTH_EXCEEDED",
          `prompt is ${promptTokens.length} tokens; the context holds ${this.contextSize}`,
          { prompt_tokens: promptTokens.length, context_size: this.contextSize },
          { param: "prompt" },
        );
      }
      const grammar = req.format ? await this.grammars.get(req.format) : undefined;
      const sequence = await this.pool.acquire(signal, {
        pick: (free) => longestPrefixIndex(free, promptTokens),
        priority: req.priority ?? "live",
        bytes: waitingBytes(req, promptTokens.length),
      });
      const input: LoopInput = {
        model: this.model, sequence, req, promptTokens, grammar, signal, started,
        eogBan: wantsEogBan(req) ? eogBan(this.model, this.vocabularySize) : undefined,
        budget: Math.min(req.maxTokens, this.contextSize - promptTokens.length),
        onToken: () => this.generated++,
      };
      return this.run(input, this.releaser(sequence));
    } catch (err) {
      this.active--;
      throw err;
    }
  }

  /** Gives the sequence back exactly once, whichever of the stream's ends gets there first. */
  private releaser(sequence: LlamaContextSequence): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pool.release(sequence);
      this.active--;
    };
  }

  /**
   * The stream for a request holding a sequence. A generator's `finally` only runs once it has started,
   * so `return()` on a stream nobody read releases the sequence too.
   */
  private run(input: LoopInput, release: () => void): GenerationStream {
    const gen = this.generate(input, release);
    const ret = gen.return.bind(gen);
    gen.return = async (value) => {
      try {
        return await ret(value);
      } finally {
        release();
      }
    };
    return gen;
  }

  private async *generate(input: LoopInput, release: () => void): GenerationStream {
    const { sequence, promptTokens } = input;
    try {
      // Reuse the part of the prompt this sequence already holds; at least one token is evaluated to sample from.
      const keep = Math.min(sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
      await eraseFrom(sequence, keep);
      return yield* generationLoop(input, keep);
    } finally {
      release();
    }
  }

  /** One embedding per input, computed one at a time on a lazily created embedding context. */
  async embed(inputs: Array<string | number[]>, signal?: AbortSignal): Promise<{ vectors: number[][]; promptTokens: number }> {
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
        const tokens = typeof input === "string" ? this.tokenize(input) : this.checkTokens(input);
        // llama.cpp appends an end token to an embedding input, so the input must leave room for it.
        if (tokens.length >= this.embeddingContextSize) {
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

/**
 * What a request holds while it waits for a sequence, estimated: 16 KiB for its connection, request and
 * reply objects, the raw and the parsed prompt at up to 2 bytes a character each, and the prompt's
 * tokens at 8 bytes each. Measured with 1,000 queued 16-character streams: 15 KiB of heap each; with a
 * 6,000-character prompt: 37 KiB (Node 20, stories260K).
 */
export function waitingBytes(req: GenerateRequest, promptTokens: number): number {
  // Token ids given as a prompt: the body spells each in about 4 characters, and the parsed list is a second copy.
  const chars = typeof req.prompt === "string" ? req.prompt.length : 4 * req.prompt.length;
  return 16 * 1024 + 4 * chars + 8 * promptTokens;
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
