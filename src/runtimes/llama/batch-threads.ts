import type { LlamaContext } from "node-llama-cpp";
import type { ModelRuns } from "../loaded-model.js";
import { wrapNativeContext } from "./native-context.js";
import { LOOP_END, SEQUENCE_END, type GenerateTokens } from "./native-generation.js";

/** The native context methods node-llama-cpp's batch loop calls around each decode (3.x internals), and the native loop (native-generation.ts). */
interface NativeContext {
  initBatch(size: number): void;
  setThreads(threads: number): void;
  decodeBatch(): Promise<void>;
  generateTokens?: GenerateTokens;
}

/**
 * The thread counts a context's decodes run on, changeable while it serves (thread-tuning.ts sets them at
 * load), each capped by what node-llama-cpp grants: `one` for one-token batches, `many` for batches of up to
 * `manyUpTo` tokens (several sequences decoding a token each), and every granted thread for larger ones
 * (prompts), which even a tiny model decodes faster on more threads.
 */
export interface ThreadCaps {
  one: number;
  many: number;
  manyUpTo: number;
}

/**
 * Decodes one-token batches on `decodeThreads` llama.cpp threads and larger batches (prompts, several
 * sequences at once) on the context's full thread count, as llama.cpp's own `n_threads` and
 * `n_threads_batch` do. node-llama-cpp sets both to one number; this chooses per batch from the batch
 * size it announces in `initBatch`, just before the decode.
 *
 * Why (2-core machine, see README, Threads): a single stream gains nothing from a second llama.cpp
 * thread, and while Inferno frames and writes token i on the JS thread, the two compute threads of token
 * i + 1 would wait for each other at every barrier; batches of several sequences and prompts run 1.7x
 * faster on both cores. The thread count node-llama-cpp grants (its threads splitter) stays the upper bound.
 * With `runs`, it also counts the decodes and the tokens they carry. A native generation loop
 * (`generateTokens`) gets the same two thread counts, and its decodes and tokens are counted as its sequences end.
 * Returns the caps, which take effect from the next decode (or native loop) on; undefined on another
 * node-llama-cpp, which keeps its one thread count.
 */
export function splitThreadsByBatch(context: LlamaContext, decodeThreads: number, runs?: ModelRuns): ThreadCaps | undefined {
  const native = (context as unknown as { _ctx?: NativeContext })._ctx;
  if (!native || typeof native.initBatch !== "function" || typeof native.decodeBatch !== "function" || typeof native.setThreads !== "function") {
    return undefined;
  }
  let granted = context.currentThreads;
  const caps: ThreadCaps = { one: Math.min(decodeThreads, granted), many: granted, manyUpTo: Infinity };
  let applied = granted;
  let size = 0;
  const apply = (threads: number) => {
    if (threads !== applied) {
      native.setThreads(threads);
      applied = threads;
    }
  };
  const wrapped: Partial<Record<PropertyKey, unknown>> = {
    initBatch: (n: number) => {
      size = n;
      native.initBatch(n);
    },
    setThreads: (n: number) => {
      granted = n;
    },
    decodeBatch: () => {
      if (runs) {
        runs.runs++;
        runs.items += size;
      }
      apply(Math.min(granted, size === 1 ? caps.one : size <= caps.manyUpTo ? caps.many : granted));
      return native.decodeBatch();
    },
  };
  const generateTokens = native.generateTokens?.bind(native);
  if (generateTokens) {
    wrapped.generateTokens = ((ids, positions, tokens, samplers, maxTokens, _one, _many, window, intervalMs, onEvent) =>
      generateTokens(ids, positions, tokens, samplers, maxTokens, Math.min(granted, caps.one), Math.min(granted, caps.many), window, intervalMs, (kind, index, value, error) => {
        if (kind === LOOP_END) applied = -1; // the loop set llama.cpp's threads itself
        if (runs && kind === LOOP_END) runs.runs += value;
        if (runs && kind === SEQUENCE_END) runs.items += value;
        onEvent(kind, index, value, error);
      })) satisfies GenerateTokens;
  }
  wrapNativeContext(context, wrapped);
  return caps;
}
