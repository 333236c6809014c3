// A GGUF model served by a llama-server child process (the opt-in "llama-server" engine). Inferno keeps
// everything the API sees: the tokenizer and chat template (node-llama-cpp, vocabulary only), the queue
// of requests waiting for a slot, stop strings, UTF-8-safe chunks, logprobs, usage and errors. llama-server
// only decodes: each request goes to the slot Inferno picked, as token ids, over the child's Unix socket.
import type { IncomingMessage } from "node:http";
import type { LlamaModel, Token } from "node-llama-cpp";
import type { FinishReason, GenerationChunk, GenerationResult, GenerationStream, TokenLogprob } from "../../core/generation.js";
import { LogprobQueue } from "../../core/logprob-queue.js";
import { StopMatcher } from "../../core/stop-matcher.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import { grammarStops } from "../llama/generation-loop.js";
import { GgufTextModel, sharedPrefix, type GgufTextModelOptions, type SlotRequest } from "../llama/gguf-text-model.js";
import type { LlamaServerProcess } from "./llama-server-process.js";

/** A llama-server slot and the tokens its KV cache holds, as far as Inferno knows. */
export interface ServerSlot {
  id: number;
  tokens: Token[];
}

export interface LlamaServerModelOptions extends GgufTextModelOptions {
  contextSize: number;
  parallel: number;
  /** The load-time estimate (weights, KV cache, compute buffers), as for the in-process engine. */
  memory: MemoryUse;
}

/** How many recent tokens the repeat/presence/frequency penalties look at (as the in-process engine). */
const PENALTY_WINDOW = 64;
const MIN_LOGPROB = -9999;

/** One event of llama-server's `/completion` stream (the fields Inferno reads). */
interface CompletionEvent {
  content?: string;
  tokens?: number[];
  stop?: boolean;
  stop_type?: string;
  truncated?: boolean;
  tokens_predicted?: number;
  timings?: { cache_n?: number };
  completion_probabilities?: Array<{
    token: string;
    bytes: number[];
    logprob: number;
    top_logprobs?: Array<{ token: string; bytes: number[]; logprob: number }>;
  }>;
  error?: { code?: number; message?: string; type?: string };
}

/** Where a request stands while its events arrive. */
interface Progress {
  completionTokens: number;
  firstTokenAt: number;
  finishReason: FinishReason;
  cached: number | undefined;
}

/** How long a failed request waits for the child's exit to be reported before calling it a bad answer. */
const EXIT_WAIT_MS = 500;

export class LlamaServerModel extends GgufTextModel<ServerSlot> {
  readonly engine = "llama-server";

  constructor(
    vocabulary: LlamaModel,
    private readonly server: LlamaServerProcess,
    private readonly settings: LlamaServerModelOptions,
  ) {
    super(vocabulary, Array.from({ length: settings.parallel }, (_, id) => ({ id, tokens: [] })), settings);
  }

  get contextSize(): number {
    return this.settings.contextSize;
  }

  /** The child's process id (for tests and the log). */
  get pid(): number | undefined {
    return this.server.pid;
  }

  /** A dead child: the registry loads the model again on its next request. */
  get broken(): boolean {
    return !this.server.alive;
  }

  memoryUsage(): MemoryUse {
    return this.settings.memory;
  }

  protected pickSlot(free: ServerSlot[], prompt: Token[]): number {
    let best = 0;
    let bestLen = -1;
    free.forEach((slot, i) => {
      const len = sharedPrefix(slot.tokens, prompt);
      if (len > bestLen) {
        best = i;
        bestLen = len;
      }
    });
    return best;
  }

  protected rank(): Promise<number[]> {
    return Promise.reject(this.textOnly());
  }

  embed(): Promise<{ vectors: number[][]; promptTokens: number }> {
    return Promise.reject(this.textOnly());
  }

  /** The capability check refuses these first; this is the engine's own answer, should one get through. */
  private textOnly(): InfernoError {
    return new InfernoError("UNSUPPORTED_OPERATION", "this model runs on the llama-server engine, which serves text generation only; load it with engine node-llama-cpp for embeddings or reranking", {
      capabilities: this.capabilities,
      engine: this.engine,
    });
  }

  protected async *generateOn(input: SlotRequest<ServerSlot>): GenerationStream {
    const { slot, req, promptTokens, signal } = input;
    // llama-server reuses the prefix its slot holds and evaluates at least the last prompt token again.
    const predictedCache = Math.min(sharedPrefix(slot.tokens, promptTokens), promptTokens.length - 1);
    slot.tokens = [...promptTokens];
    const progress: Progress = { completionTokens: 0, firstTokenAt: 0, finishReason: "stop", cached: undefined };
    const stops = new StopMatcher([...req.stop, ...grammarStops(input.grammar)]);
    const logprobs = req.logprobs !== undefined ? new LogprobQueue() : undefined;
    let text = "";
    let index = 0;
    const chunk = (emit: string): GenerationChunk => {
      text += emit;
      const lp = logprobs?.take(emit.length);
      return lp ? { text: emit, index: index++, logprobs: lp } : { text: emit, index: index++ };
    };

    let prompt = promptTokens;
    const minTokens = req.ignoreEos ? 0 : Math.min(req.minTokens ?? 0, input.budget);
    if (minTokens > 0 && !signal.aborted) {
      // min_tokens: the first tokens come from a request that cannot end at an end-of-generation token
      // (llama-server's ignore_eos), unstreamed so that their ids continue the prompt of the rest. As on
      // the in-process engine, stop strings are not looked for in them.
      const first = await this.complete(this.body(input, prompt, minTokens, false, true), signal);
      if (first) {
        const ids = (first.tokens ?? []) as Token[];
        this.count(input, progress, first.tokens_predicted ?? ids.length);
        progress.cached = first.timings?.cache_n;
        if (logprobs) for (const [entry, length] of this.logprobsOf(first, req.logprobs ?? 0, first.content ?? "")) logprobs.push(entry, length);
        if (first.content) yield chunk(first.content);
        prompt = [...promptTokens, ...ids];
        slot.tokens = [...prompt];
        if (first.truncated || progress.completionTokens >= input.budget) progress.finishReason = "length";
      }
    }

    let stopped = false;
    if (!signal.aborted && progress.completionTokens < input.budget && progress.finishReason !== "length") {
      const done = progress.completionTokens;
      const body = this.body(input, prompt, input.budget - done, true, req.ignoreEos === true);
      for await (const event of this.stream(body, signal)) {
        if (signal.aborted) break;
        if (event.tokens_predicted !== undefined) this.count(input, progress, done + event.tokens_predicted);
        if (event.tokens) for (const t of event.tokens) slot.tokens.push(t as Token);
        const content = event.content ?? "";
        if (logprobs && content) for (const [entry, length] of this.logprobsOf(event, req.logprobs ?? 0, content)) logprobs.push(entry, length);
        const piece = stops.push(content);
        if (piece.emit) yield chunk(piece.emit);
        if (piece.stopped) {
          stopped = true;
          progress.finishReason = "stop";
          break; // leaving the loop closes the connection: llama-server cancels the rest
        }
        if (event.stop) {
          progress.finishReason = event.stop_type === "limit" || event.truncated ? "length" : "stop";
          progress.cached = event.timings?.cache_n ?? progress.cached;
        }
      }
    }
    if (!stopped) {
      const rest = stops.flush();
      if (rest) yield chunk(rest);
    }
    const now = performance.now();
    const result: GenerationResult = {
      text,
      finishReason: progress.finishReason,
      promptTokens: promptTokens.length,
      completionTokens: progress.completionTokens,
      cachedPromptTokens: Math.min(progress.cached ?? predictedCache, promptTokens.length),
      timeToFirstTokenMs: (progress.firstTokenAt || now) - input.started,
      totalMs: now - input.started,
    };
    return result;
  }

  /** Counts tokens up to `total` generated so far (llama-server reports a running count). */
  private count(input: SlotRequest<ServerSlot>, progress: Progress, total: number): void {
    if (total <= progress.completionTokens) return;
    if (progress.completionTokens === 0) progress.firstTokenAt = performance.now();
    for (let i = progress.completionTokens; i < total; i++) input.onToken();
    progress.completionTokens = total;
  }

  /** The `/completion` request: token ids, the slot, the sampling settings as the in-process engine applies them. */
  private body(input: SlotRequest<ServerSlot>, prompt: Token[], nPredict: number, stream: boolean, ignoreEos: boolean): Record<string, unknown> {
    const { sampling, logprobs } = input.req;
    return {
      prompt,
      id_slot: input.slot.id,
      cache_prompt: true,
      n_predict: nPredict,
      stream,
      return_tokens: true,
      temperature: sampling.temperature,
      top_k: sampling.topK,
      top_p: sampling.topP,
      min_p: sampling.minP,
      repeat_penalty: sampling.repeatPenalty,
      presence_penalty: sampling.presencePenalty,
      frequency_penalty: sampling.frequencyPenalty,
      repeat_last_n: PENALTY_WINDOW,
      ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
      ...(ignoreEos ? { ignore_eos: true } : {}),
      ...(logprobs !== undefined ? { n_probs: Math.max(1, logprobs) } : {}),
      ...(input.grammar ? { grammar: input.grammar.grammar } : {}),
    };
  }

  /** Logprob entries for an event's text: one per token llama-server reports (a token ending mid-character shares its entry). */
  private logprobsOf(event: CompletionEvent, top: number, content: string): [TokenLogprob, number][] {
    const probs = event.completion_probabilities ?? [];
    const log = (p: number) => Math.max(p, MIN_LOGPROB);
    return probs.map((p, i) => [
      {
        token: p.token,
        bytes: p.bytes,
        logprob: log(p.logprob),
        top: (p.top_logprobs ?? []).slice(0, top).map((t) => ({ token: t.token, bytes: t.bytes, logprob: log(t.logprob) })),
      },
      // The whole text goes with the last entry, so the queue releases them all with it.
      i === probs.length - 1 ? content.length : 0,
    ]);
  }

  /** A request's single answer (stream: false), or undefined when it was cancelled. */
  private async complete(body: Record<string, unknown>, signal: AbortSignal): Promise<CompletionEvent | undefined> {
    let last: CompletionEvent | undefined;
    for await (const event of this.events(body, signal, false)) last = event;
    return last;
  }

  private stream(body: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<CompletionEvent> {
    return this.events(body, signal, true);
  }

  /**
   * The events of one `/completion` request. Returning early (a stop string, the reader gone) or the
   * signal destroys the connection, which llama-server takes as a cancel. A dead child or an error
   * event becomes a coded InfernoError.
   */
  private async *events(body: Record<string, unknown>, signal: AbortSignal, streamed: boolean): AsyncGenerator<CompletionEvent> {
    if (!this.server.alive) throw this.deadError();
    const local = new AbortController();
    const abort = () => local.abort();
    signal.addEventListener("abort", abort, { once: true });
    let res: IncomingMessage | undefined;
    try {
      try {
        res = await this.server.request("POST", "/completion", body, local.signal);
      } catch (err) {
        if (signal.aborted) return;
        throw await this.transportError(err);
      }
      if (res.statusCode !== 200) {
        let text = "";
        for await (const part of res) text += part;
        throw errorFrom(res.statusCode ?? 0, parseJson(text));
      }
      let buffer = "";
      let finished = false;
      try {
        for await (const part of res as AsyncIterable<string>) {
          buffer += part;
          if (!streamed) continue;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) !== -1) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!frame.startsWith("data: ")) continue;
            const data = frame.slice(6);
            if (data === "[DONE]") return;
            const event = parseJson(data) as CompletionEvent | undefined;
            if (!event) continue;
            if (event.error) throw errorFrom(event.error.code ?? 500, event);
            if (event.stop) finished = true;
            yield event;
          }
        }
      } catch (err) {
        if (err instanceof InfernoError || signal.aborted) throw err;
        throw await this.transportError(err);
      }
      if (!streamed) {
        const event = parseJson(buffer) as CompletionEvent | undefined;
        if (!event) throw await this.transportError(new Error("an unreadable answer"));
        yield event;
      } else if (!signal.aborted && !finished) {
        // The stream ended before its last event: the child died, or its answer was cut.
        throw await this.transportError(new Error("the stream ended early"));
      }
    } catch (err) {
      if (signal.aborted && !(err instanceof InfernoError)) return;
      throw err;
    } finally {
      signal.removeEventListener("abort", abort);
      if (res && !res.complete) res.destroy();
      local.abort();
    }
  }

  private deadError(): InfernoError {
    return new InfernoError("INFERENCE_FAILED", `the model's llama-server process ended (${this.server.exitMessage ?? "unknown"}); it is loaded again on the next request`, {
      engine: this.engine,
    });
  }

  /** A failed request's error: the child's death when it died (waiting a moment for its exit), else the failure. */
  private async transportError(err: unknown): Promise<InfernoError> {
    if (await this.server.exited(EXIT_WAIT_MS)) return this.deadError();
    return new InfernoError("INFERENCE_FAILED", `llama-server request failed: ${(err as Error).message}`, { engine: this.engine }, { cause: err });
  }

  protected async disposeEngine(): Promise<void> {
    await this.server.close();
    await this.model.dispose();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** llama-server's error answer as a coded error: its 400s are the request's fault, the rest the server's. */
function errorFrom(status: number, body: unknown): InfernoError {
  const err = (body as { error?: { message?: string } } | undefined)?.error;
  const message = err?.message ?? `llama-server answered ${status}`;
  if (status === 400) return new InfernoError("INVALID_REQUEST", message);
  if (status === 503) return new InfernoError("SERVICE_UNAVAILABLE", message);
  return new InfernoError("INFERENCE_FAILED", `llama-server: ${message}`);
}
