// The generated tiny llama loaded through node-llama-cpp, and greedy generation on it, for tests of what
// Inferno does below node-llama-cpp's API (batch-threads, native-generation).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { getLlama, LlamaLogLevel, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";

/** The prompt's tokens, BOS first, as Inferno builds them. */
export function promptTokens(model: LlamaModel, prompt: string): Token[] {
  const input = model.tokenize(prompt);
  if (model.tokens.bos !== null) input.unshift(model.tokens.bos);
  return input;
}

/** The generated tiny llama (seed `seed`) loaded on a llama of `maxThreads`; both go when the test ends. */
export async function tinyModel(t: TestContext, seed: number, maxThreads: number): Promise<LlamaModel> {
  const dir = await mkdtemp(path.join(tmpdir(), "tiny-llama-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const modelPath = path.join(dir, "tiny-llama.gguf");
  await writeTinyLlamaGguf(modelPath, { seed });
  const llama = await getLlama({ gpu: false, maxThreads, logLevel: LlamaLogLevel.error });
  t.after(() => llama.dispose());
  return llama.loadModel({ modelPath });
}

/** The first `count` greedy tokens after `prompt` (BOS first) on `sequence`; with `probabilities`, asked for them too. */
export async function greedyTokens(model: LlamaModel, sequence: LlamaContextSequence, prompt: string, count: number, probabilities = false): Promise<Token[]> {
  const out: Token[] = [];
  for await (const step of sequence.evaluateWithMetadata(promptTokens(model, prompt), { probabilities }, { temperature: 0 })) if (out.push(step.token) >= count) break;
  return out;
}

/** Each prompt's greedy tokens, generated alone on a one-sequence context. */
export async function eachAlone(model: LlamaModel, prompts: string[], contextSize: number, count: number): Promise<Token[][]> {
  const alone = await model.createContext({ contextSize, threads: 1 });
  const out: Token[][] = [];
  for (const prompt of prompts) {
    const sequence = alone.getSequence();
    out.push(await greedyTokens(model, sequence, prompt, count));
    sequence.dispose();
  }
  await alone.dispose();
  return out;
}

