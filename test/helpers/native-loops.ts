// A record of the native generation loops (patches/node-llama-cpp-generate-tokens.patch) run on a context, for
// the tests that check streams really ran on one.
import { setTimeout as sleep } from "node:timers/promises";
import type { LlamaContext } from "node-llama-cpp";
import { wrapNativeContext } from "../../src/runtimes/llama/native-context.js";
import { LOOP_END, SEQUENCE_END, TOKEN, type GenerateTokens } from "../../src/runtimes/llama/native-generation.js";

export interface RecordedLoop {
  /** Per sequence of the loop, by its index (started with, then joined): tokens sampled so far. */
  sampled: number[];
  /** Per sequence: tokens it decoded into the sequence, once it left the loop. */
  decoded: Array<number | undefined>;
  /** How many llama_decode calls the loop made, once it ended. */
  decodes: number | undefined;
  /** Per sequence: how many times its tokens reached JavaScript, tokens delivered in one go counting once. */
  deliveries: number[];
}

/** Records every loop started on the context from now on; undefined when its addon has no `generateTokens`. */
export function recordNativeLoops(context: LlamaContext): RecordedLoop[] | undefined {
  const native = (context as unknown as { _ctx: { generateTokens?: GenerateTokens } })._ctx;
  if (typeof native.generateTokens !== "function") return undefined;
  const generateTokens = native.generateTokens.bind(native);
  const loops: RecordedLoop[] = [];
  wrapNativeContext(context, {
    generateTokens: ((ids, positions, tokens, samplers, maxTokens, one, many, window, intervalMs, onEvent) => {
      const loop: RecordedLoop = { sampled: ids.map(() => 0), decoded: ids.map(() => undefined), decodes: undefined, deliveries: ids.map(() => 0) };
      loops.push(loop);
      // Tokens posted together reach onEvent one after the other with no microtask between them.
      const inDelivery = new Set<number>();
      return generateTokens(ids, positions, tokens, samplers, maxTokens, one, many, window, intervalMs, (kind, index, value, error) => {
        if (kind === TOKEN) {
          loop.sampled[index] = (loop.sampled[index] ?? 0) + 1;
          if (!inDelivery.has(index)) {
            loop.deliveries[index] = (loop.deliveries[index] ?? 0) + 1;
            inDelivery.add(index);
            queueMicrotask(() => inDelivery.delete(index));
          }
        }
        if (kind === SEQUENCE_END) loop.decoded[index] = value;
        if (kind === LOOP_END) loop.decodes = value;
        onEvent(kind, index, value, error);
      });
    }) satisfies GenerateTokens,
  });
  return loops;
}

/** Tokens the loops sampled and the goes they reached JavaScript in, over every loop and sequence. */
export function loopTotals(loops: readonly RecordedLoop[]): { sampled: number; deliveries: number } {
  const total = (pick: (loop: RecordedLoop) => number[]) => loops.reduce((sum, loop) => sum + pick(loop).reduce((a, b) => a + b, 0), 0);
  return { sampled: total((l) => l.sampled), deliveries: total((l) => l.deliveries) };
}

/** Waits up to half a second for the loop to end (its last sequence gone); whether it did. */
export async function loopEnded(loop: RecordedLoop): Promise<boolean> {
  for (let i = 0; i < 100 && loop.decodes === undefined; i++) await sleep(5);
  return loop.decodes !== undefined;
}
