import { getLlama, LlamaLogLevel } from "node-llama-cpp";

/** A long prompt and its length in tokens, BOS included, as every side tokenizes it (llama.cpp's tokenizer). */
export interface LongPrompt {
  text: string;
  tokens: number;
}

const PASSAGE = (
  "Once upon a time there was a little girl named Lily. She loved to play in the park with her dog Max. " +
  "One day the sun was warm and the sky was blue, so they ran to the big tree near the pond. " +
  "A small bird sat on a branch and sang a happy song. Lily smiled and waved at the bird, and Max barked. " +
  "Then her mom called her home for lunch, and they walked back along the river, tired and glad."
).split(" ");

/**
 * The short prompt's length, and `count` long prompts of exactly `tokens` tokens (BOS included) where the
 * text allows, else the nearest below. Each long one starts at another word of the passage, so no two share
 * a prefix past BOS: a prompt is never found in any side's cache, whatever its cache policy.
 */
export async function preparePrompts(modelPath: string, short: string, tokens: number, count: number): Promise<{ shortTokens: number; long: LongPrompt[] }> {
  const llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath, vocabOnly: true });
  try {
    const bos = model.tokens.bos != null && model.tokens.shouldPrependBosToken ? 1 : 0;
    const length = (text: string) => model.tokenize(text, false).length + bos;
    const words = (start: number, n: number) => Array.from({ length: n }, (_, i) => PASSAGE[(start + i) % PASSAGE.length]).join(" ");
    const prompts: LongPrompt[] = [];
    for (let k = 0; k < count; k++) {
      // The largest word count whose text fits: token counts grow with words, one or more at a time.
      let lo = 1;
      let hi = tokens * 2;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (length(words(k, mid)) <= tokens) lo = mid;
        else hi = mid - 1;
      }
      const text = words(k, lo);
      prompts.push({ text, tokens: length(text) });
    }
    return { shortTokens: length(short), long: prompts };
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}
