// A record of the native generation loops (patches/node-llama-cpp-generate-tokens.patch) run on a context, for
// the tests that check streams really ran on one.
import type { LlamaContext } from "node-llama-cpp";
import { wrapNativeContext } from "../../src/runtimes/llama/native-context.js";
import { TOKEN, type GenerateTokens } from "../../src/runtimes/llama/native-generation.js";

export interface RecordedLoop {
  /** Tokens the loop sampled so far. */
  sampled: number;
  /** Tokens it decoded into the sequence, once it ended. */
  decoded: number | undefined;
}

/** Records every loop started on the context from now on; undefined when its addon has no `generateTokens`. */
export function recordNativeLoops(context: LlamaContext): RecordedLoop[] | undefined {
  const native = (context as unknown as { _ctx: { generateTokens?: GenerateTokens } })._ctx;
  if (typeof native.generateTokens !== "function") return undefined;
  const generateTokens = native.generateTokens.bind(native);
  const loops: RecordedLoop[] = [];
  wrapNativeContext(context, {
    generateTokens: ((sequenceId, firstTokenIndex, token, sampler, maxTokens, window, onEvent) => {
      const loop: RecordedLoop = { sampled: 0, decoded: undefined };
      loops.push(loop);
      return generateTokens(sequenceId, firstTokenIndex, token, sampler, maxTokens, window, (kind, value, error) => {
        if (kind === TOKEN) loop.sampled++;
        else loop.decoded = value;
        onEvent(kind, value, error);
      });
    }) satisfies GenerateTokens,
  });
  return loops;
}
