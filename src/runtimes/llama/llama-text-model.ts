import type { LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel, LlamaRankingContext, Token } from "node-llama-cpp";
import type { GenerationStream } from "../../core/generation.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import type { ModelRuns } from "../loaded-model.js";
import { eogBan, wantsEogBan } from "./eog-ban.js";
import { eraseFrom, generationLoop, type LoopInput } from "./generation-loop.js";
import { GgufTextModel, type GgufTextModelOptions, type SlotRequest } from "./gguf-text-model.js";
import type { ThreadCaps } from "./batch-threads.js";
import type { ThreadTuning } from "./thread-tuning.js";

export interface LlamaTextModelOptions extends GgufTextModelOptions {
  threads: number;
  /** Counted around each llama_decode (batch-threads.ts). */
  engineRuns: ModelRuns;
  /** The llama.cpp threads its decodes run on, when node-llama-cpp lets Inferno choose them per batch. */
  caps?: ThreadCaps;
  /** The ms its native loops group a stream's tokens by, as a loop starting now would (config streamIntervalMs). */
  streamInterval?: () => number;
  /** Where the weights are: RAM, and GPU memory for the layers offloaded. */
  weights: MemoryUse;
}

/** A GGUF model run in-process: one node-llama-cpp context whose sequences serve concurrent requests, batched together. */
export class LlamaTextModel extends GgufTextModel<LlamaContextSequence> {
  readonly engine = "node-llama-cpp";
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  private ranking: Promise<LlamaRankingContext> | undefined;
  private embedChain: Promise<unknown> = Promise.resolve();

  constructor(
    model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly settings: LlamaTextModelOptions,
  ) {
    const sequences: LlamaContextSequence[] = [];
    while (context.sequencesLeft > 0) sequences.push(context.getSequence());
    super(model, sequences, settings);
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  get engineRuns(): Readonly<ModelRuns> {
    return this.settings.engineRuns;
  }

  /** Bytes of weights a token reads (thread-tuning.ts). */
  get weightBytes(): number {
    return this.model.size;
  }

  /** The thread counts measured at load, when they were (thread-tuning.ts). */
  threadTuning: ThreadTuning | undefined;

  /** The load's options, with the llama.cpp threads one-token and larger batches run on, and the stream interval. */
  override get options(): Readonly<Record<string, unknown>> {
    const { caps, streamInterval } = this.settings;
    if (!caps && !streamInterval) return super.options;
    return Object.freeze({
      ...super.options,
      ...(caps ? { threads: caps.one, batch_threads: caps.many } : {}),
      ...(streamInterval ? { stream_interval_ms: streamInterval() } : {}),
    });
  }

  protected override resetEngineCounters(): void {
    this.settings.engineRuns.runs = 0;
    this.settings.engineRuns.items = 0;
  }

  memoryUsage(): MemoryUse {
    const ctx = this.context.memoryUsage;
    return { ram: this.settings.weights.ram + ctx.ram, vram: this.settings.weights.vram + ctx.vram };
  }

  /** The free sequence sharing the longest prefix with the prompt (prompt-cache reuse). */
  protected pickSlot(free: LlamaContextSequence[], prompt: Token[]): number {
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

  protected async *generateOn(input: SlotRequest<LlamaContextSequence>): GenerationStream {
    const { slot: sequence, promptTokens, req } = input;
    // Reuse the part of the prompt this sequence already holds; at least one token is evaluated to sample from.
    const keep = Math.min(sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
    await eraseFrom(sequence, keep);
    const loop: LoopInput = {
      ...input,
      model: this.model,
      sequence,
      eogBan: wantsEogBan(req) ? eogBan(this.model, this.vocabularySize) : undefined,
    };
    return yield* generationLoop(loop, keep);
  }

  /**
   * One embedding per input, computed one at a time on a lazily created embedding context. Inputs come
   * checked against the embedding context by the embeddings service.
   */
  embed(inputs: Array<string | number[]>, signal?: AbortSignal): Promise<{ vectors: number[][]; promptTokens: number }> {
    return this.counted(async () => {
      const run = this.embedChain.then(async () => {
        this.embedding ??= this.model.createEmbeddingContext({
          contextSize: this.embeddingContextSize,
          threads: this.settings.threads,
        });
        const ctx = await this.embedding;
        const vectors: number[][] = [];
        let promptTokens = 0;
        for (const input of inputs) {
          signal?.throwIfAborted();
          const tokens = typeof input === "string" ? this.tokenize(input) : this.checkTokens(input);
          promptTokens += tokens.length;
          const embedding = await ctx.getEmbeddingFor(tokens);
          vectors.push([...embedding.vector]);
        }
        return { vectors, promptTokens };
      });
      this.embedChain = run.catch(() => undefined);
      return run;
    });
  }

  /**
   * Scores documents one at a time on a lazily created ranking context, in turn with embeddings (one
   * encoder context of each kind, taking turns). Inputs come checked by the rerank service.
   */
  protected rank(query: Token[], documents: Token[][], signal?: AbortSignal): Promise<number[]> {
    return this.counted(async () => {
      const run = this.embedChain.then(async () => {
        this.ranking ??= this.model.createRankingContext({ contextSize: this.embeddingContextSize, threads: this.settings.threads });
        const ctx = await this.ranking;
        const scores: number[] = [];
        for (const document of documents) {
          signal?.throwIfAborted();
          scores.push(await ctx.rank(query, document));
        }
        return scores;
      });
      this.embedChain = run.catch(() => undefined);
      return run;
    });
  }

  protected async disposeEngine(): Promise<void> {
    if (this.embedding) await (await this.embedding.catch(() => undefined))?.dispose();
    if (this.ranking) await (await this.ranking.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
}
