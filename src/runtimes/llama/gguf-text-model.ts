import type { LlamaGrammar, LlamaModel, Token } from "node-llama-cpp";
import { ResourcePool, type PoolLimits } from "../../scheduler/resource-pool.js";
import type { Capability, ModelCapabilities } from "../../core/capabilities.js";
import type { GenerateRequest, GenerationStream } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import type { LoadedModel } from "../loaded-model.js";
import { ChatRenderer } from "./chat-renderer.js";
import { checkEogBan } from "./eog-ban.js";
import { GrammarCache } from "./grammar-cache.js";

export interface GgufTextModelOptions {
  /** Bounds on the queue of requests waiting for a slot. */
  queue?: PoolLimits;
  loadTimeMs: number;
  options: Record<string, unknown>;
  /** From the file, the load's `mode` and the engine (LlamaRuntime.capabilities). */
  capabilities: ModelCapabilities;
}

/** A request that holds a slot, checked and tokenized, ready for an engine to run. */
export interface SlotRequest<Slot> {
  slot: Slot;
  req: GenerateRequest;
  promptTokens: Token[];
  /** Generation may not go past this many tokens (the rest of the context). */
  budget: number;
  grammar: LlamaGrammar | undefined;
  signal: AbortSignal;
  started: number;
  /** Called for every generated token (lifetime counters). */
  onToken: () => void;
}

/**
 * A loaded GGUF model as the API sees it, whichever engine runs it: the tokenizer and chat template (from
 * node-llama-cpp's model), the queue of requests waiting for one of its slots, request checks, counters.
 * An engine (in-process node-llama-cpp, or a llama-server child process) supplies the slots and runs a
 * request on one.
 */
export abstract class GgufTextModel<Slot> implements LoadedModel {
  readonly type = "gguf" as const;
  readonly capabilities: readonly Capability[];
  readonly capabilityNote: string | undefined;
  /** Which engine runs the model: "node-llama-cpp" (in-process) or "llama-server". */
  abstract readonly engine: string;
  private loadMs: number;
  private readonly loadOptions: Readonly<Record<string, unknown>>;
  private readonly pool: ResourcePool<Slot>;
  private active = 0;
  private generated = 0;
  protected disposed = false;
  private renderer: ChatRenderer | undefined;
  private readonly grammars: GrammarCache;

  constructor(
    readonly model: LlamaModel,
    private readonly slots: readonly Slot[],
    settings: GgufTextModelOptions,
  ) {
    this.loadMs = settings.loadTimeMs;
    this.capabilities = settings.capabilities.capabilities;
    this.capabilityNote = settings.capabilities.note;
    this.loadOptions = Object.freeze({ ...settings.options });
    this.pool = new ResourcePool([...slots], settings.queue);
    this.grammars = new GrammarCache(model.llama);
  }

  /** Tokens per sequence. */
  abstract get contextSize(): number;
  abstract memoryUsage(): MemoryUse;
  /** Index of the free slot to serve this prompt (the one whose cache shares most of it). */
  protected abstract pickSlot(free: Slot[], prompt: Token[]): number;
  /** Runs a request on the slot it holds; the stream ends with the request's result. */
  protected abstract generateOn(input: SlotRequest<Slot>): GenerationStream;
  abstract embed(inputs: Array<string | number[]>, signal?: AbortSignal): Promise<{ vectors: number[][]; promptTokens: number }>;
  /** The relevance of each document to the query, from the model's classification head (0 to 1). */
  protected abstract rank(query: Token[], documents: Token[][], signal?: AbortSignal): Promise<number[]>;
  protected abstract disposeEngine(): Promise<void>;

  /** The options it was loaded with, normalised. */
  get options(): Readonly<Record<string, unknown>> {
    return this.loadOptions;
  }

  /** Milliseconds the load took, its warm-up included. */
  get loadTimeMs(): number {
    return this.loadMs;
  }

  /**
   * Runs work the load does through the model itself (thread tuning): its time counts as load time and
   * its tokens in no counter.
   */
  async warmUp<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.loadMs += performance.now() - started;
      this.generated = 0;
      this.resetEngineCounters();
    }
  }

  /** Forgets what the engine counted during the warm-up. */
  protected resetEngineCounters(): void {}

  get parallel(): number {
    return this.slots.length;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Tokens generated over the model's lifetime (all requests). */
  get generatedTokens(): number {
    return this.generated;
  }

  /** Requests waiting for a free slot. */
  get queued(): number {
    return this.pool.waiting;
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
  protected checkTokens(ids: number[]): Token[] {
    const vocab = this.vocabularySize;
    const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== -1) {
      throw new InfernoError("INVALID_REQUEST", `token id ${ids[bad]} at position ${bad} is not in the vocabulary (0-${vocab - 1})`, undefined, {
        param: "prompt",
      });
    }
    return ids as Token[];
  }

  /**
   * The query and each document tokenized once, without their leading space, as node-llama-cpp's ranking
   * context tokenizes them; `lengths` counts what the reranker sees of each pair: BOS, the query, EOS, SEP,
   * the document, EOS (those the model has). A model whose GGUF carries a rerank template
   * (`tokenizer.chat_template.rerank`) adds that template's text too; the lengths leave it out.
   */
  rankPairs(query: string, documents: readonly string[]): { lengths: number[]; score: (signal?: AbortSignal) => Promise<number[]> } {
    const { bos, eos, sep } = this.model.tokens;
    const special = (bos == null ? 0 : 1) + (eos == null ? 0 : 2) + (sep == null ? 0 : 1);
    const q = this.model.tokenize(query, false, "trimLeadingSpace");
    const docs = documents.map((d) => this.model.tokenize(d, false, "trimLeadingSpace"));
    return { lengths: docs.map((d) => special + q.length + d.length), score: (signal) => this.rank(q, docs, signal) };
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

  /** Most tokens an embedding input (or a reranker's query-document pair) may have: llama.cpp appends an end token. */
  get inputTokenLimit(): number {
    return this.embeddingContextSize - 1;
  }

  truncate(ids: number[]): number[] {
    return ids.slice(0, this.inputTokenLimit);
  }

  /** The context of `embed` and `rank`, in tokens. */
  get embeddingContextSize(): number {
    return Math.min(this.contextSize, this.model.trainContextSize);
  }

  /** The model's chat template, resolved once per model (a registration may choose another). */
  get chat(): ChatRenderer {
    this.renderer ??= new ChatRenderer(this.model, typeof this.options.chat_template === "string" ? this.options.chat_template : "auto");
    return this.renderer;
  }

  /**
   * Validates the request, waits for a free slot, and returns the token stream. Everything that can
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
      const slot = await this.pool.acquire(signal, {
        pick: (free) => this.pickSlot(free, promptTokens),
        priority: req.priority ?? "live",
        bytes: waitingBytes(req, promptTokens.length),
      });
      const input: SlotRequest<Slot> = {
        slot, req, promptTokens, grammar, signal, started,
        budget: Math.min(req.maxTokens, this.contextSize - promptTokens.length),
        onToken: () => this.generated++,
      };
      return this.run(input, this.releaser(slot));
    } catch (err) {
      this.active--;
      throw err;
    }
  }

  /** Gives the slot back exactly once, whichever of the stream's ends gets there first. */
  private releaser(slot: Slot): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pool.release(slot);
      this.active--;
    };
  }

  /**
   * The stream for a request holding a slot. A generator's `finally` only runs once it has started,
   * so `return()` on a stream nobody read releases the slot too.
   */
  private run(input: SlotRequest<Slot>, release: () => void): GenerationStream {
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

  private async *generate(input: SlotRequest<Slot>, release: () => void): GenerationStream {
    try {
      return yield* this.generateOn(input);
    } finally {
      release();
    }
  }

  /** Counts a request for as long as `work` runs (the registry never unloads a model in use). */
  protected async counted<T>(work: () => Promise<T>): Promise<T> {
    if (this.disposed) throw new InfernoError("MODEL_NOT_LOADED", "model was unloaded");
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.disposeEngine();
  }
}

/**
 * What a request holds while it waits for a slot, estimated: 16 KiB for its connection, request and
 * reply objects, the raw and the parsed prompt at up to 2 bytes a character each, and the prompt's
 * tokens at 8 bytes each. Measured with 1,000 queued 16-character streams: 15 KiB of heap each; with a
 * 6,000-character prompt: 37 KiB (Node 20, stories260K).
 */
export function waitingBytes(req: GenerateRequest, promptTokens: number): number {
  // Token ids given as a prompt: the body spells each in about 4 characters, and the parsed list is a second copy.
  const chars = typeof req.prompt === "string" ? req.prompt.length : 4 * req.prompt.length;
  return 16 * 1024 + 4 * chars + 8 * promptTokens;
}

/** Length of the prefix two token lists share. */
export function sharedPrefix(a: readonly Token[], b: readonly Token[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A GGUF model on any engine, as the routes, batch worker and scheduler see it (its slot type is the engine's). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TextModel = GgufTextModel<any>;
