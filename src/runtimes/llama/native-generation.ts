import { acquireLock } from "lifecycle-utils";
import type { LlamaContext, LlamaContextSequence, LlamaModel, SequenceEvaluateMetadataOptions, SequenceEvaluateOptions, Token } from "node-llama-cpp";

/** What the token source hands out: a token, with its probabilities when they were asked for. */
export type Step = { token: Token; probabilities?: Map<Token, number> };

/** `generateTokens` from patches/node-llama-cpp-generate-tokens.patch, its events and what it returns. */
export type LoopEvent = (kind: number, index: number, value: number, error?: string) => void;
/** Event kinds: a sampled token of sequence `index`; the loop's end (value: its decodes); sequence `index` ended (value: tokens it decoded). */
export const TOKEN = 0;
export const LOOP_END = 1;
export const SEQUENCE_END = 2;
export interface LoopHandle {
  /** Adds a sequence to the running loop from its next step on: its index, or -1 once the loop is ending. */
  join(sequenceId: number, firstTokenIndex: number, token: number, sampler: unknown, maxTokens: number): number;
  stop(): void;
  stopSequence(index: number): void;
  ack(index: number, count: number): void;
}
export type GenerateTokens = (
  sequenceIds: number[],
  firstTokenIndexes: number[],
  tokens: number[],
  samplers: unknown[],
  maxTokens: number[],
  threadsOne: number,
  threadsMany: number,
  window: number,
  /** Post a sequence's tokens after its first in groups at most this often (ms); 0: each as it is sampled. */
  intervalMs: number,
  onEvent: LoopEvent,
) => LoopHandle;

/** node-llama-cpp 3.x internals read here, on the context and its sequences. */
interface ContextInternals {
  _ctx: { generateTokens?: GenerateTokens };
  _queuedDecodes: unknown[];
  _batchDispatchPending: boolean;
  _dispatchDecodeScheduled: boolean;
  _scheduleDecode(): void;
  _backendContextDisposeGuard: { createPreventDisposalHandle(): { dispose(): void } };
}
interface SequenceInternals {
  _sequenceId: number;
  _nextTokenIndex: number;
  _contextTokens: Token[];
  _loadedTokenPredictions: unknown[];
  needsCheckpoints: boolean;
  _resolveSamplerConfig(options: SequenceEvaluateOptions): object;
}
interface ModelInternals {
  _model: unknown;
  _llama: { _bindings: { AddonSampler: new (model: unknown) => NativeSampler } };
}
interface NativeSampler {
  applyConfig(config: object): void;
  dispose(): void;
}

/**
 * How many sampled tokens a sequence may run ahead of its reader in the native loop. A reader that stops taking
 * tokens (a client that does not read its stream) holds its own sequence back after this many; a stop string or
 * a cancel leaves at most this many decoded tokens past the end, which the next request on the sequence erases.
 */
export const NATIVE_WINDOW = 8;

/** A sequence in a native loop: its tokens as they arrive, until it ends. */
class Member {
  readonly tokens: Token[] = [];
  readonly sampled: Token[] = [];
  ended = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly loop: NativeLoop,
    readonly index: number,
    readonly sequence: LlamaContextSequence,
    readonly start: Token,
  ) {}

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((wake) => wake());
  }

  /** The next sampled token, or undefined once the sequence has ended and every token was taken. */
  async take(): Promise<Token | undefined> {
    while (this.tokens.length === 0 && !this.ended) await this.event();
    const token = this.tokens.shift();
    if (token !== undefined) this.loop.handle?.ack(this.index, 1);
    return token;
  }

  /** Ends this sequence's part in the loop and waits until it has (its bookkeeping done). */
  async stop(): Promise<void> {
    this.loop.handle?.stopSequence(this.index);
    while (!this.ended) await this.event();
  }

  private event(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/** What a sequence needs to run in a native loop. */
interface Entry {
  sequence: LlamaContextSequence;
  start: Token;
  maxTokens: number;
  sampler: NativeSampler;
}

/**
 * One native loop on a context, under node-llama-cpp's context lock until it ends. Sequences join it while it
 * runs and leave it as they end; it ends when none is left or it is stopped.
 */
class NativeLoop {
  handle: LoopHandle | undefined;
  readonly members: Member[] = [];
  error: string | undefined;
  ended = false;
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly release: () => void) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  /** Starts the loop with its first sequence. Throws what the addon throws, having released the lock. */
  start(generate: GenerateTokens, threads: number, intervalMs: number, entry: Entry): Member {
    const { sequenceId, next } = positionOf(entry.sequence);
    try {
      this.handle = generate([sequenceId], [next], [entry.start], [entry.sampler], [entry.maxTokens], threads, threads, NATIVE_WINDOW, intervalMs, this.onEvent);
    } catch (err) {
      this.end(undefined);
      throw err;
    }
    return this.add(0, entry);
  }

  /** Adds a sequence from the loop's next step on; undefined once the loop is ending. */
  join(entry: Entry): Member | undefined {
    if (this.ended || !this.handle) return undefined;
    const { sequenceId, next } = positionOf(entry.sequence);
    const index = this.handle.join(sequenceId, next, entry.start, entry.sampler, entry.maxTokens);
    return index < 0 ? undefined : this.add(index, entry);
  }

  private add(index: number, entry: Entry): Member {
    const member = new Member(this, index, entry.sequence, entry.start);
    this.members[index] = member;
    return member;
  }

  private end(error: string | undefined): void {
    this.error = error;
    this.ended = true;
    this.release();
    this.finish();
  }

  private readonly onEvent: LoopEvent = (kind, index, value, error) => {
    if (kind === LOOP_END) return this.end(error);
    const member = this.members[index];
    if (!member) return;
    if (kind === TOKEN) {
      member.tokens.push(value as Token);
      member.sampled.push(value as Token);
    } else if (kind === SEQUENCE_END) {
      // The sequence decoded its start token and then each token it sampled but the last.
      const seq = member.sequence as unknown as SequenceInternals;
      const decoded = [member.start, ...member.sampled].slice(0, value);
      seq._contextTokens = seq._contextTokens.concat(decoded);
      seq._nextTokenIndex += decoded.length;
      member.ended = true;
    }
    member.notify();
  };
}

const positionOf = (sequence: LlamaContextSequence) => {
  const seq = sequence as unknown as SequenceInternals;
  return { sequenceId: seq._sequenceId, next: seq._nextTokenIndex };
};

/**
 * The native loop of one context. Every generation on the context is counted; while every one of them samples
 * plainly and nothing else is queued on the context, the first stream to ask starts a loop and every other one
 * joins it when it asks for its next token, so that they all run in one llama_decode a step, as llama-server's
 * slots do. A new generation, or any decode queued on the context by something else, stops the loop; the
 * streams go on through node-llama-cpp's batches (with the newcomer's prompt) and come back as they ask again.
 */
class ContextLoops {
  generations = 0;
  plain = 0;
  private loop: NativeLoop | undefined;
  private starting: Promise<void> | undefined;

  constructor(
    private readonly context: LlamaContext,
    private readonly intervalMs: () => number,
  ) {}

  /** Whether nothing but the generations' own next steps is queued on the context. */
  idle(): boolean {
    const c = this.context as unknown as ContextInternals;
    return c._queuedDecodes.length === 0 && !c._batchDispatchPending && !c._dispatchDecodeScheduled;
  }

  /** Whether a stream may run natively now: every stream on the context samples plainly and nothing else waits for it. */
  ready(source: TokenSource): boolean {
    return this.plain === this.generations && this.idle() && !source.busy();
  }

  stop(): void {
    this.loop?.handle?.stop();
  }

  /** Puts the sequence in the context's native loop (joining the running one, or starting one); undefined when it may not run natively now. */
  async request(source: TokenSource, entry: Entry): Promise<Member | undefined> {
    for (;;) {
      if (this.starting) {
        await this.starting;
        continue;
      }
      if (!this.ready(source)) return undefined;
      const loop = this.loop;
      if (loop && !loop.ended) {
        const member = loop.join(entry);
        if (member) return member;
        await loop.done; // ending: it releases the context when it has, then a new one may start
        continue;
      }
      const starting = this.start(source, entry);
      this.starting = starting.then(
        () => undefined,
        () => undefined,
      );
      try {
        return await starting;
      } finally {
        this.starting = undefined;
      }
    }
  }

  private async start(source: TokenSource, entry: Entry): Promise<Member | undefined> {
    const context = this.context;
    const lock = await acquireLock([context, "context"]);
    let guard: { dispose(): void } | undefined;
    try {
      guard = (context as unknown as ContextInternals)._backendContextDisposeGuard.createPreventDisposalHandle();
    } catch {
      // the context is being disposed: node-llama-cpp's own path says so
    }
    if (!guard || !this.ready(source)) {
      guard?.dispose();
      lock.dispose();
      return undefined;
    }
    const held = guard;
    const loop = new NativeLoop(() => {
      held.dispose();
      lock.dispose();
    });
    const member = loop.start((context as unknown as ContextInternals)._ctx.generateTokens!, context.currentThreads, this.intervalMs(), entry);
    this.loop = loop;
    return member;
  }
}

const loopsOf = new WeakMap<LlamaContext, ContextLoops>();

/** What streamIntervalMs "auto" groups by when it groups (README, Threads, Stream interval). */
export const AUTO_STREAM_INTERVAL_MS = 20;

/**
 * The grouping interval of a model's native loops for config streamIntervalMs: a number is itself; "auto" is
 * AUTO_STREAM_INTERVAL_MS for a model on the CPU whose one-stream decode runs on every core (then the JS thread's
 * wake-up and write for each token take time from llama.cpp's threads, which group sending spares), else 0 (a
 * core is free for the JS thread, or the GPU computes: each token at once).
 */
export function streamIntervalFor(setting: number | "auto", facts: { gpuLayers: number; decodeThreads: number; cores: number }): number {
  if (setting !== "auto") return setting;
  return facts.gpuLayers === 0 && facts.decodeThreads >= facts.cores ? AUTO_STREAM_INTERVAL_MS : 0;
}

/** Asks the native loop on the context to stop after its decode in progress (its streams go on through node-llama-cpp). */
export function stopNativeLoops(context: LlamaContext): void {
  loopsOf.get(context)?.stop();
}

/**
 * Makes a context ready for native generation loops, when its addon has `generateTokens`: any decode queued on
 * the context (another stream's prompt, an erase's replay) stops the loop running there. Without the patched
 * addon, or with INFERNO_LLAMA_NATIVE_LOOP=0, it does nothing, and nothing runs natively. With `intervalMs` (a
 * number, or a function read as each loop starts), the loops post each stream's tokens after its first in groups
 * at most that often (config streamIntervalMs, streamIntervalFor).
 */
export function enableNativeLoops(context: LlamaContext, intervalMs: number | (() => number) = 0): boolean {
  const internals = context as unknown as ContextInternals;
  if (typeof internals._ctx?.generateTokens !== "function" || typeof internals._scheduleDecode !== "function") return false;
  if (process.env.INFERNO_LLAMA_NATIVE_LOOP === "0") return false;
  const loops = new ContextLoops(context, typeof intervalMs === "function" ? intervalMs : () => intervalMs);
  const schedule = internals._scheduleDecode.bind(context);
  internals._scheduleDecode = () => {
    loops.stop();
    schedule();
  };
  loopsOf.set(context, loops);
  return true;
}

export interface TokenSourceInput {
  model: LlamaModel;
  sequence: LlamaContextSequence;
  /** The tokens to evaluate first (the prompt's part the sequence does not hold yet). */
  tokens: Token[];
  metadata: SequenceEvaluateMetadataOptions;
  options: SequenceEvaluateOptions;
  /** Sampling settings when this request may run on the native loop (plain sampling, see generation-loop.ts). */
  native: SequenceEvaluateOptions | undefined;
  /** The most tokens the request may generate. */
  budget: number;
  /** Whether anything else waits for the context (an erase), so that no native loop should start. */
  busy: () => boolean;
}

/**
 * The tokens of one generation. They come from node-llama-cpp's `evaluateWithMetadata`, which batches the
 * request with every other stream on the context; and, while every stream on the context samples plainly, from
 * the context's native loop (`generateTokens`), which decodes all of them together and samples each without a
 * trip through JavaScript per token. A new stream, or anything else queued on the context, stops the loop after
 * its decode in progress, and the streams go on through node-llama-cpp, batched with the newcomer, with the same
 * tokens: greedy sampling gives what it gives either way, and seeded random sampling never runs natively.
 */
export class TokenSource {
  private iterator: AsyncGenerator<Step, void, void> | undefined;
  private member: Member | undefined;
  private last: Token | undefined;
  private handed = 0;
  private sampler: NativeSampler | undefined;
  private closed = false;
  private readonly loops: ContextLoops | undefined;

  constructor(private readonly input: TokenSourceInput) {
    this.loops = loopsOf.get(input.sequence.context);
    if (this.loops) {
      this.loops.generations++;
      if (input.native) this.loops.plain++;
      // A new stream: its prompt goes through node-llama-cpp, batched with the others' next tokens (one token left
      // to evaluate on a context with nothing else to do starts a loop of its own instead, see next()).
      this.loops.stop();
    }
  }

  /** Whether tokens come from a native loop now. */
  get native(): boolean {
    return this.member !== undefined;
  }

  busy(): boolean {
    return this.input.busy();
  }

  async next(): Promise<IteratorResult<Step, void>> {
    if (this.member) {
      const token = await this.member.take();
      if (token !== undefined) {
        if (token < 0) throw new Error("Failed to sample next token"); // as node-llama-cpp says it
        return this.hand({ token });
      }
      const { loop } = this.member;
      this.member = undefined;
      if (loop.ended && loop.error) throw new Error(loop.error);
      // Stopped for another stream, or at the budget: go on through node-llama-cpp from the last token.
    }
    // The token a native loop would decode first: the last one handed out, or at the start the prompt's one token
    // left to evaluate (a prompt the sequence held but its last token, or a one-token prompt): its first token then
    // comes from one native decode and sample, not node-llama-cpp's batch dispatch and two trips through libuv's pool.
    const start = this.last ?? (this.input.tokens.length === 1 ? this.input.tokens[0] : undefined);
    if (start !== undefined) {
      const maxTokens = this.nativeBudget(); // checked without an await: most tokens of a batched stream pass here
      if (maxTokens > 0) {
        const member = await this.loops!.request(this, { sequence: this.input.sequence, start, maxTokens, sampler: this.nativeSampler() });
        if (member) {
          this.member = member;
          if (this.iterator) {
            // Nothing is queued: the iterator sits at its last yield, and returning it decodes nothing.
            await this.iterator.return();
            this.iterator = undefined;
          }
          return this.next();
        }
      }
    }
    if (!this.iterator) {
      const first = this.last === undefined ? this.input.tokens : [this.last];
      this.iterator = this.input.sequence.evaluateWithMetadata(first, this.input.metadata, this.input.options) as AsyncGenerator<Step, void, void>;
    }
    const step = await this.iterator.next();
    return step.done ? step : this.hand(step.value);
  }

  private hand(step: Step): IteratorResult<Step, void> {
    if (this.input.model.isEogToken(step.token)) return { done: true, value: undefined }; // as node-llama-cpp: not handed out
    this.handed++;
    this.last = step.token;
    return { done: false, value: step };
  }

  /** How many tokens a native loop could generate now: 0 unless the request allows one and the context has nothing else to do. */
  private nativeBudget(): number {
    const { native, sequence, budget } = this.input;
    const seq = sequence as unknown as SequenceInternals;
    if (!native || !this.loops?.ready(this) || seq.needsCheckpoints || seq._loadedTokenPredictions.length > 0) return 0;
    return Math.max(0, Math.min(budget - this.handed, sequence.context.contextSize - 1 - seq._nextTokenIndex));
  }

  private nativeSampler(): NativeSampler {
    if (!this.sampler) {
      const m = this.input.model as unknown as ModelInternals;
      this.sampler = new m._llama._bindings.AddonSampler(m._model);
      this.sampler.applyConfig((this.input.sequence as unknown as SequenceInternals)._resolveSamplerConfig(this.input.native!));
    }
    return this.sampler;
  }

  /**
   * Says no more tokens will be asked for (the budget is reached, a stop string or the end was found, the reader
   * left), before the last text is handed on: the stream no longer counts among the context's generations, and
   * it leaves the loop it is in.
   */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.loops) {
      this.loops.generations--;
      if (this.input.native) this.loops.plain--;
    }
    if (this.member) this.member.loop.handle?.stopSequence(this.member.index);
  }

  /** Ends the generation: takes its sequence out of a native loop (waiting for the decode in progress) or returns the iterator. */
  async return(): Promise<void> {
    this.release();
    try {
      if (this.member) await this.member.stop();
      this.member = undefined;
      await this.iterator?.return();
    } finally {
      this.sampler?.dispose();
      this.sampler = undefined;
    }
  }
}
