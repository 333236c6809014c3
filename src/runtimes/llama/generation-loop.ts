import {
  LlamaGrammarEvaluationState, LlamaText,
  type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type SequenceEvaluateOptions, type Token,
  type TokenBias,
} from "node-llama-cpp";
import type { FinishReason, GenerateRequest, GenerationChunk, GenerationResult, GenerationStream, TokenLogprob } from "../../core/generation.js";
import { LogprobQueue } from "../../core/logprob-queue.js";
import { StopMatcher } from "../../core/stop-matcher.js";
import { eogBanOption } from "./eog-ban.js";
import { stopNativeLoops, TokenSource, type Step } from "./native-generation.js";
import { TokenTextDecoder } from "./token-text-decoder.js";

/** How many recent tokens the repeat/presence/frequency penalties look at (llama.cpp's default). */
const PENALTY_WINDOW = 64;
/** Floor for log(0), which JSON cannot carry. */
const MIN_LOGPROB = -9999;

export interface LoopInput {
  model: LlamaModel;
  sequence: LlamaContextSequence;
  req: GenerateRequest;
  promptTokens: Token[];
  /** Generation may not go past this many tokens (the rest of the context). */
  budget: number;
  grammar: LlamaGrammar | undefined;
  /** The end-of-generation ban, when the request has ignoreEos or minTokens. */
  eogBan: TokenBias | undefined;
  signal: AbortSignal;
  started: number;
  /** Called for every generated token (lifetime counters). */
  onToken: () => void;
}

/** The request's sampler settings that every path takes: temperature, top-k/p, min-p and seed. */
function baseSampling({ sampling }: GenerateRequest): SequenceEvaluateOptions {
  return {
    temperature: sampling.temperature,
    topK: sampling.topK,
    topP: sampling.topP,
    minP: sampling.minP,
    ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
  };
}

const penalizes = ({ sampling }: GenerateRequest) => sampling.repeatPenalty !== 1 || sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;

function evaluateOptions(input: LoopInput, history: Token[], generated: () => number): SequenceEvaluateOptions {
  const { sampling } = input.req;
  return {
    ...baseSampling(input.req),
    ...(input.grammar ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model: input.model, grammar: input.grammar }) } : {}),
    ...eogBanOption(input.model, input.eogBan, input.req, generated),
    ...(penalizes(input.req)
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
  };
}

/**
 * The sampling settings for node-llama-cpp's native generation loop (native-generation.ts), when the request
 * samples plainly enough for it: no grammar, penalties, probabilities or end-of-generation ban that changes
 * during the generation (min_tokens), and no seed with temperature above 0 (a seeded stream must give the same
 * text whether or not it moved between the loop and node-llama-cpp's batches, each with its own sampler).
 */
function nativeSampling(input: LoopInput): SequenceEvaluateOptions | undefined {
  const { req } = input;
  if (input.grammar || req.logprobs !== undefined || (req.minTokens ?? 0) > 0 || penalizes(req)) return undefined;
  if (req.sampling.seed !== undefined && req.sampling.temperature > 0) return undefined;
  return { ...baseSampling(req), ...(input.eogBan ? { tokenBias: input.eogBan } : {}) };
}

/** Text of grammar stop triggers that are plain strings (the JSON grammars end in "\n\n\n\n"). */
export function grammarStops(grammar: LlamaGrammar | undefined): string[] {
  return (grammar?.stopGenerationTriggers ?? [])
    .map((t) => (typeof t === "string" ? t : t instanceof LlamaText ? t.toString() : undefined))
    .filter((t): t is string => !!t);
}

const noop = () => {};

/** Erasures waiting for a context's lock, and a promise that settles when none is left (see eraseFrom). */
interface Erasing {
  waiting: number;
  settled: Promise<void>;
  settle: () => void;
}
const erasing = new WeakMap<LlamaContext, Erasing>();

/**
 * Drops what a sequence holds past `keep`, so that a new request reuses the prefix it shares. node-llama-cpp
 * erases under the context lock, which its batch loop keeps for as long as any sequence has a decode queued:
 * with other streams running on the context, the erase (and so the new request's first token) would wait
 * until all of them had finished. While an erase waits, the generation loops on that context hold back
 * their next decode (see generationLoop): the batch in flight ends, the loop runs dry, the erase gets in.
 */
export async function eraseFrom(sequence: LlamaContextSequence, keep: number): Promise<void> {
  if (sequence.nextTokenIndex <= keep) return;
  const context = sequence.context;
  stopNativeLoops(context); // a native loop holds the context lock until it stops
  let state = erasing.get(context);
  if (!state) {
    let settle = noop;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    state = { waiting: 0, settled, settle };
    erasing.set(context, state);
  }
  state.waiting++;
  try {
    await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  } finally {
    if (--state.waiting === 0) {
      erasing.delete(context);
      state.settle();
    }
  }
}

/**
 * Resolves after node-llama-cpp has handed the decode just requested to llama.cpp. It gathers a batch's
 * decodes until a setImmediate (or until every sequence has one) before dispatching them, so work done
 * in the same tick would run before the decode starts instead of beside it; a second setImmediate runs
 * after that one.
 */
const afterDispatch = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));

/**
 * Samples tokens on a sequence that already holds the prompt prefix `keep`, turning them into text
 * chunks: whole characters only, nothing of a stop string, logprobs attached to the chunk that carries
 * their text. Ends at an end-of-generation token, a stop string, the budget, or the abort signal; with
 * ignoreEos or minTokens, end-of-generation tokens are banned from sampling (see eog-ban.ts).
 *
 * Pipelined: once a token is known not to end generation, the next one is requested before this one is
 * handed on, so llama.cpp decodes token i + 1 while token i is logged, framed and written. A token that
 * arrives after the signal fired is dropped unseen, so cancellation, stop strings and usage counts are
 * what they would be without the look-ahead. Tokens come from a TokenSource (native-generation.ts): node-llama-cpp's
 * batched evaluation, or, while every stream on the context samples plainly, the native loop, which runs a few
 * tokens further ahead.
 */
export async function* generationLoop(input: LoopInput, keep: number): GenerationStream {
  const { model, sequence, req, promptTokens, signal } = input;
  const history = promptTokens.slice(-PENALTY_WINDOW);
  let completionTokens = 0;
  // Read when the next token is sampled, which is after the previous one was counted (see requestNext).
  const options = evaluateOptions(input, history, () => completionTokens);
  // As in vLLM, the first minTokens tokens cannot end generation by a stop string either.
  const minTokens = req.minTokens ?? 0;
  const wantLogprobs = req.logprobs !== undefined;
  const decoder = new TokenTextDecoder(model, promptTokens);
  const stops = new StopMatcher([...req.stop, ...grammarStops(input.grammar)]);
  const logprobs = wantLogprobs ? new LogprobQueue() : undefined;
  let text = "";
  let index = 0;
  let firstTokenAt = 0;
  let finishReason: FinishReason = "stop";
  let stopped = false;
  /** Asks for the next token, unless generation ends here. */
  const requestNext = (): Promise<IteratorResult<Step, void>> | undefined => {
    if (signal.aborted || completionTokens >= input.budget) {
      if (!signal.aborted) finishReason = "length";
      source.release(); // no more tokens: leave the native loop now, before the last text is handed on
      return undefined;
    }
    const next = source.next();
    next.catch(noop); // a stream abandoned while this is in flight must not leave an unhandled rejection
    return next;
  };
  const chunk = (emit: string): GenerationChunk => {
    text += emit;
    const lp = logprobs?.take(emit.length);
    return lp ? { text: emit, index: index++, logprobs: lp } : { text: emit, index: index++ };
  };
  // Created here, just before the try whose finally closes it (it counts the generations on the context).
  const source = new TokenSource({
    model,
    sequence,
    tokens: promptTokens.slice(keep),
    metadata: wantLogprobs ? { probabilities: true } : {},
    options,
    native: nativeSampling(input),
    budget: input.budget,
    busy: () => erasing.has(sequence.context),
  });
  let pending = requestNext();
  try {
    while (pending) {
      const step = await pending;
      pending = undefined;
      if (step.done || signal.aborted) break; // end-of-generation token, or the reader left meanwhile
      if (completionTokens === 0) firstTokenAt = performance.now();
      completionTokens++;
      input.onToken();
      const { token } = step.value;
      history.push(token);
      if (history.length > PENALTY_WINDOW * 2) history.splice(0, history.length - PENALTY_WINDOW);
      const decoded = decoder.push(token);
      const piece = completionTokens > minTokens ? stops.push(decoded) : { emit: decoded, stopped: false };
      stopped = piece.stopped;
      if (stopped) source.release();
      else {
        const waitFor = erasing.get(sequence.context)?.settled;
        if (waitFor) await waitFor; // a new request is waiting to erase on this context: let the batch loop run dry
        pending = requestNext();
        // The first token goes out at once (time to first token); later ones once the next decode is under way
        // (a native loop does not wait for this one).
        if (pending && completionTokens > 1 && !source.native) await afterDispatch();
      }
      if (logprobs) logprobs.push(tokenLogprob(model, token, decoded, step.value.probabilities, req.logprobs!, history), decoded.length);
      if (piece.emit) yield chunk(piece.emit);
    }
    source.release();
    if (!stopped) {
      const tail = stops.push(decoder.flush());
      const rest = tail.emit + (tail.stopped ? "" : stops.flush());
      if (rest) yield chunk(rest);
    }
  } finally {
    // A reader that leaves mid-stream returns this generator with a decode in flight: let it land first.
    if (pending) await pending.catch(noop);
    await source.return();
  }
  const now = performance.now();
  const result: GenerationResult = {
    text,
    finishReason,
    promptTokens: promptTokens.length,
    completionTokens,
    cachedPromptTokens: keep,
    timeToFirstTokenMs: (firstTokenAt || now) - input.started,
    totalMs: now - input.started,
  };
  return result;
}

function tokenLogprob(
  model: LlamaModel,
  token: Token,
  text: string,
  probabilities: Map<Token, number> | undefined,
  top: number,
  history: Token[],
): TokenLogprob {
  const log = (p: number | undefined) => (p && p > 0 ? Math.max(Math.log(p), MIN_LOGPROB) : MIN_LOGPROB);
  const context = history.slice(-5, -1);
  const alternatives: TokenLogprob["top"] = [];
  if (probabilities && top > 0) {
    for (const [alt, p] of probabilities) {
      if (alternatives.length >= top) break;
      const altText = model.detokenize([alt], false, context);
      alternatives.push({ token: altText, bytes: [...Buffer.from(altText, "utf8")], logprob: log(p) });
    }
  }
  return { token: text, bytes: [...Buffer.from(text, "utf8")], logprob: log(probabilities?.get(token)), top: alternatives };
}
