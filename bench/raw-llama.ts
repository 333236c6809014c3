import {
  getLlama,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
} from "node-llama-cpp";
import { sequenceOrderStrategy } from "../src/runtimes/llama/batch-order.js";
import { splitThreadsByBatch } from "../src/runtimes/llama/batch-threads.js";
import type { StreamTiming } from "./stats.js";

/** The sampler settings Inferno passes for `{"temperature": 0}` (its defaults for the rest), so both sides sample alike. */
export const GREEDY = { temperature: 0, topK: 40, topP: 0.95, minP: 0.05 } as const;

export interface RawContextOptions {
  contextSize: number;
  sequences: number;
  threads: number;
  batchSize: number;
  /** llama.cpp threads for one-token batches when fewer than `threads` (Inferno's split, batch-threads.ts); `threads` for every batch when absent. */
  decodeThreads?: number;
  /** Batches in sequence-id order, as Inferno batches (batch-order.ts), instead of node-llama-cpp's queue order. */
  sequenceOrder?: boolean;
}

/** Opens the llama.cpp backend once per bench, CPU only, with the thread cap the bench was given. */
export function openLlama(threads: number): Promise<Llama> {
  return getLlama({ gpu: false, maxThreads: threads, build: "never", progressLogs: false, logLevel: LlamaLogLevel.error });
}

/**
 * node-llama-cpp driven directly: one context, its sequences, and the bare evaluate loop. This is the
 * ceiling Inferno is measured against, so it does only what generation needs and nothing else.
 */
export class RawLlama {
  /** What `generate` samples with: GREEDY, plus a token bias where a bench needs one (the peer bench's ignore_eos). */
  sampling: SequenceEvaluateOptions = GREEDY;

  private constructor(
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequences: LlamaContextSequence[],
  ) {}

  static async open(llama: Llama, modelPath: string, opts: RawContextOptions): Promise<RawLlama> {
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    let created: LlamaContext | undefined;
    const context = await model.createContext({
      contextSize: opts.contextSize,
      sequences: opts.sequences,
      threads: opts.threads,
      batchSize: opts.batchSize,
      ...(opts.sequenceOrder ? { batching: { itemPrioritizationStrategy: sequenceOrderStrategy(() => created) } } : {}),
    });
    created = context;
    if (opts.decodeThreads !== undefined && opts.decodeThreads < opts.threads) splitThreadsByBatch(context, opts.decodeThreads);
    const sequences: LlamaContextSequence[] = [];
    while (context.sequencesLeft > 0) sequences.push(context.getSequence());
    return new RawLlama(model, context, sequences);
  }

  get parallel(): number {
    return this.sequences.length;
  }

  /** Prompt tokens with BOS, as Inferno builds them. */
  tokenize(prompt: string): Token[] {
    const tokens = this.model.tokenize(prompt, false);
    const bos = this.model.tokens.bos;
    return bos != null && this.model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
  }

  /**
   * Greedy generation of up to maxTokens on one sequence. Like Inferno, it keeps the prompt prefix the
   * sequence already holds and evaluates at least the last prompt token, so both sides do the same work.
   * A `deadlineMs` (performance.now() time) stops it early; the bench uses that to size its runs.
   * `onToken` is called with performance.now() for every token.
   */
  async generate(
    promptTokens: Token[],
    maxTokens: number,
    sequenceIndex = 0,
    deadlineMs = Infinity,
    onToken?: (now: number) => void,
  ): Promise<StreamTiming> {
    const sequence = this.sequences[sequenceIndex];
    if (!sequence) throw new Error(`no sequence ${sequenceIndex} (context has ${this.sequences.length})`);
    const startMs = performance.now();
    const keep = Math.min(sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
    if (sequence.nextTokenIndex > keep) await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
    const budget = Math.min(maxTokens, this.context.contextSize - promptTokens.length);
    const iterator = sequence.evaluate(promptTokens.slice(keep), this.sampling);
    let tokens = 0;
    let firstTokenMs = 0;
    let lastTokenMs = 0;
    let finishReason = "stop";
    try {
      for (;;) {
        if (tokens >= budget) {
          finishReason = "length";
          break;
        }
        if (lastTokenMs > deadlineMs) {
          finishReason = "deadline";
          break;
        }
        const step = await iterator.next();
        if (step.done) break;
        lastTokenMs = performance.now();
        if (tokens === 0) firstTokenMs = lastTokenMs;
        tokens++;
        onToken?.(lastTokenMs);
      }
    } finally {
      await iterator.return();
    }
    return { tokens, startMs, firstTokenMs, lastTokenMs, endMs: lastTokenMs, finishReason };
  }

  /** The tokens of one greedy generation (sequence 0), for benches that replay a real token stream. */
  async tokens(promptTokens: Token[], maxTokens: number): Promise<Token[]> {
    const sequence = this.sequences[0]!;
    await sequence.clearHistory();
    const out: Token[] = [];
    for await (const token of sequence.evaluate(promptTokens, GREEDY)) {
      out.push(token);
      if (out.length >= maxTokens) break;
    }
    await sequence.clearHistory();
    return out;
  }

  /** One generation on each of the first `streams` sequences at once; node-llama-cpp batches them. */
  generateConcurrently(promptTokens: Token[], maxTokens: number, streams: number, deadlineMs = Infinity): Promise<StreamTiming[]> {
    return Promise.all(Array.from({ length: streams }, (_, i) => this.generate(promptTokens, maxTokens, i, deadlineMs)));
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}
