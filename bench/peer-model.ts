// The peer bench's default model: issue #13's 85M llama (768 wide, 12 blocks, Q8_0) with random weights and
// stories260K's tokenizer, generated once into the cache dir. The output rows of end-of-sequence and of
// every token that is not a normal piece are zero, so greedy decoding never picks them: it runs to
// max_tokens (every side also sends ignore_eos), and each token is a whole piece, one stream event each.
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { BENCH_85M, randomLlamaGguf, vocabularyOf } from "./bench-model.js";
import { infernoCacheDir } from "../src/runtimes/llama-server/llama-server-bin.js";

/** Bump when the generated file would differ (shape, seed, writer), so a stale cached copy is not reused. */
const NAME = "bench-85m-q8_0-seed7-pieces-v1.gguf";
const SEED = 7;

export async function peerBenchModel(repoRoot: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = path.join(infernoCacheDir(env), "bench-models", NAME);
  if (existsSync(file)) return file;
  const tokenizer = path.join(repoRoot, "../shared/models/stories260K.gguf");
  if (!existsSync(tokenizer)) throw new Error(`the bench model takes its tokenizer from ${tokenizer}, which is missing (or pass --model PATH)`);
  await mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, randomLlamaGguf(BENCH_85M, await vocabularyOf(tokenizer), { seed: SEED, zeroEos: true, piecesOnly: true }));
  await rename(partial, file);
  return file;
}
