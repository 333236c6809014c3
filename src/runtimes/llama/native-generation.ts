import { acquireLock } from "lifecycle-utils";
import type { LlamaContext, LlamaContextSequence, LlamaModel, SequenceEvaluateMetadataOptions, SequenceEvaluateOptions, Token } from "node-llama-cpp";

/** What the token source hands out: a token, with its probabilities when they were asked for. */
export type Step = { token: Token; probabilities?: Map<Token, number> };

/** `generateTokens` from patches/node-llama-cpp-generate-tokens.patch, its events and what it returns. */
export type LoopEvent = (kind: number, value: number, error?: string) => void;
/** Event kinds: a sampled token (value: the token); the loop's end (value: how many tokens it decoded). */
export const TOKEN = 0;
export const LOOP_END = 1;
interface LoopHandle {
  stop(): void;
  ack(count: number): void;
}
export type GenerateTokens = (
  sequenceId: number,
  firstTokenIndex: number,
  token: number,
  sampler: unknown,
  maxTokens: number,
  window: number,
  onEvent: LoopEvent,
) => LoopHandle;
interface NativeContext {
  generateTokens?: GenerateTokens;
}

/** node-llama-cpp 3.x internals read here, on the context and its sequences. */
interface ContextInternals {
  _ctx: NativeContext;
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
  _llama: { _bindings: { AddonSampler: new (model: unknown) => { applyConfig(config: object): void; dispose(): void } } };
}

/**
 * How many sampled tokens the native loop may run ahead of the reader. A reader that stops taking tokens (a
 * client that does not read its stream) holds the loop back after this many; a stop string or a cancel
 * leaves at most this many decoded tokens past the end, which the next request on the sequence erases.
 */
export const NATIVE_WINDOW = 8;

/** The loops running on each context, each with its way to be stopped. */
const running = new WeakMap<LlamaContext, Set<() => void>>();
/** How many generations are under way on each context (a loop starts only for a stream that is alone). */
const generations = new WeakMap<LlamaContext, number>();

/** Asks every native loop on the context to stop after its decode in progress (it resumes on node-llama-cpp's batch loop). */
export function stopNativeLoops(context: LlamaContext): void {
  running.get(context)?.forEach((stop) => stop());
}

/**
 * Makes a context ready for native generation loops, when its addon has `generateTokens`: any decode queued on
 * the context (another stream's prompt or token) stops the loop running there, so that streams batch together
 * as before. Without the patched addon it does nothing, and nothing runs natively.
 */
export function enableNativeLoops(context: LlamaContext): boolean {
  const internals = context as unknown as ContextInternals;
  if (typeof internals._ctx?.generateTokens !== "function" || typeof internals._scheduleDecode !== "function") return false;
  if (process.env.INFERNO_LLAMA_NATIVE_LOOP === "0") return false;
  const schedule = internals._scheduleDecode.bind(context);
  internals._scheduleDecode = () => {
    stopNativeLoops(context);
    schedule();
  };
  running.set(context, new Set());
  return true;
}

/** Whether the one generation on the context is the caller's and nothing else is queued or being dispatched. */
function contextIdle(context: LlamaContext): boolean {
  const c = context as unknown as ContextInternals;
  return generations.get(context) === 1 && c._queuedDecodes.length === 0 && !c._batchDispatchPending && !c._dispatchDecodeScheduled;
}

/**
 * One native loop: decodes from `start` on, in llama.cpp's own rhythm (see the patch), under node-llama-cpp's
 * context lock. Tokens are taken with `take()`; when the loop ends, the sequence's token bookkeeping is brought
 * up to what llama.cpp holds and the lock is released, before `take()` reports the end.
 */
class NativeRun {
  private readonly tokens: Token[] = [];
  private readonly sampled: Token[] = [];
  private waiters: Array<() => void> = [];
  private handle: LoopHandle | undefined;
  ended = false;
  error: string | undefined;

  constructor(
    private readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
    private readonly start: Token,
    private readonly release: () => void,
  ) {}

  run(sampler: unknown, maxTokens: number): void {
    const seq = this.sequence as unknown as SequenceInternals;
    const native = (this.context as unknown as ContextInternals)._ctx;
    const stop = () => this.handle?.stop();
    running.get(this.context)?.add(stop);
    const onEvent: LoopEvent = (kind, value, error) => {
      if (kind === TOKEN) {
        this.tokens.push(value as Token);
        this.sampled.push(value as Token);
      } else {
        // The loop decoded `start` and then each sampled token but the last.
        const decoded = [this.start, ...this.sampled].slice(0, value);
        seq._contextTokens = seq._contextTokens.concat(decoded);
        seq._nextTokenIndex += decoded.length;
        this.error = error;
        this.ended = true;
        running.get(this.context)?.delete(stop);
        this.release();
      }
      const waiters = this.waiters;
      this.waiters = [];
      waiters.forEach((wake) => wake());
    };
    try {
      this.handle = native.generateTokens!(seq._sequenceId, seq._nextTokenIndex, this.start, sampler, maxTokens, NATIVE_WINDOW, onEvent);
    } catch (err) {
      running.get(this.context)?.delete(stop); // the caller releases the lock and the disposal guard
      throw err;
    }
  }

  /** The next sampled token, or undefined once the loop has ended and every token was taken. */
  async take(): Promise<Token | undefined> {
    while (this.tokens.length === 0 && !this.ended) await this.event();
    const token = this.tokens.shift();
    if (token !== undefined) this.handle?.ack(1);
    return token;
  }

  /** Stops the loop and waits until it has ended (its bookkeeping done, the lock released). */
  async stop(): Promise<void> {
    this.handle?.stop();
    while (!this.ended) await this.event();
  }

  /** Resolves at the loop's next event (a token or its end). */
  private event(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }
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
 * request with every other stream on the context; and, whenever this stream is alone on its context and
 * samples plainly, from a native loop (`generateTokens`) that decodes and samples without a trip through
 * JavaScript per token. As soon as anything else queues a decode on the context, the loop stops after its
 * decode in progress and the stream goes on through node-llama-cpp, batched with the newcomer, with the same
 * tokens: greedy sampling gives what it gives either way, and seeded random sampling never runs natively.
 */
export class TokenSource {
  private iterator: AsyncGenerator<Step, void, void> | undefined;
  private loop: NativeRun | undefined;
  private last: Token | undefined;
  private handed = 0;
  private sampler: { applyConfig(config: object): void; dispose(): void } | undefined;

  private closed = false;

  constructor(private readonly input: TokenSourceInput) {
    const context = input.sequence.context;
    const count = (generations.get(context) ?? 0) + 1;
    generations.set(context, count);
    if (count > 1) stopNativeLoops(context); // a second stream: batch with it instead
  }

  /** Whether tokens come from the native loop now. */
  get native(): boolean {
    return this.loop !== undefined;
  }

  async next(): Promise<IteratorResult<Step, void>> {
    if (this.loop) {
      const token = await this.loop.take();
      if (token !== undefined) {
        if (token < 0) throw new Error("Failed to sample next token"); // as node-llama-cpp says it
        return this.hand({ token });
      }
      const ended = this.loop;
      this.loop = undefined;
      if (ended.error) throw new Error(ended.error);
      // Stopped for another stream, or at the budget: go on through node-llama-cpp from the last token.
    }
    if (this.last !== undefined) {
      const maxTokens = this.nativeBudget(); // checked without an await: most tokens of a batched stream pass here
      if (maxTokens > 0 && (await this.goNative(this.last, maxTokens))) return this.next();
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
    const context = sequence.context;
    const seq = sequence as unknown as SequenceInternals;
    if (!native || !running.has(context) || seq.needsCheckpoints || seq._loadedTokenPredictions.length > 0) return 0;
    if (!contextIdle(context) || this.input.busy()) return 0;
    return Math.max(0, Math.min(budget - this.handed, context.contextSize - 1 - seq._nextTokenIndex));
  }

  /** Moves to a native loop from `start`, unless something else got to the context first. */
  private async goNative(start: Token, maxTokens: number): Promise<boolean> {
    const { native, sequence } = this.input;
    const context = sequence.context;
    const seq = sequence as unknown as SequenceInternals;
    if (!native) return false;
    const lock = await acquireLock([context, "context"]);
    let guard: { dispose(): void } | undefined;
    try {
      if (!contextIdle(context) || this.input.busy()) {
        lock.dispose();
        return false;
      }
      try {
        guard = (context as unknown as ContextInternals)._backendContextDisposeGuard.createPreventDisposalHandle();
      } catch {
        lock.dispose(); // the context is being disposed: node-llama-cpp's own path says so
        return false;
      }
      if (this.iterator) {
        // Nothing is queued: the iterator sits at its last yield, and returning it decodes nothing.
        await this.iterator.return();
        this.iterator = undefined;
      }
      if (!this.sampler) {
        const m = this.input.model as unknown as ModelInternals;
        this.sampler = new m._llama._bindings.AddonSampler(m._model);
        this.sampler.applyConfig(seq._resolveSamplerConfig(native));
      }
      const held = guard;
      const run = new NativeRun(context, sequence, start, () => {
        held.dispose();
        lock.dispose();
      });
      run.run(this.sampler, maxTokens);
      this.loop = run;
      return true;
    } catch (err) {
      guard?.dispose();
      lock.dispose();
      throw err;
    }
  }

  /** Ends the generation: stops a native loop (waiting for its decode in progress) or returns the iterator. */
  async return(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const context = this.input.sequence.context;
      generations.set(context, (generations.get(context) ?? 1) - 1);
    }
    try {
      if (this.loop) await this.loop.stop();
      this.loop = undefined;
      await this.iterator?.return();
    } finally {
      this.sampler?.dispose();
      this.sampler = undefined;
    }
  }
}
