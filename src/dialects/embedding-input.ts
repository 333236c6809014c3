// The `input` of an embeddings request, as OpenAI defines it and Inferno's native route accepts it too:
// a string, an array of strings, an array of token ids, or an array of token-id arrays, none empty.
import { z } from "zod";
import { MAX_EMBEDDING_INPUTS } from "../services/embeddings.js";

const text = z.string().min(1, "input must not be an empty string").max(1_000_000);
const tokenIds = z.array(z.number().int().min(0)).min(1).max(1_000_000);

export const embeddingInput = z.union([text, z.array(text).min(1).max(MAX_EMBEDDING_INPUTS), tokenIds, z.array(tokenIds).min(1).max(MAX_EMBEDDING_INPUTS)], {
  error: "input must be a string, an array of strings, an array of token ids or an array of token-id arrays, none empty",
});

/** A string and a token-id array are one input each. */
export function embeddingInputs(input: z.infer<typeof embeddingInput>): Array<string | number[]> {
  if (typeof input === "string") return [input];
  if (typeof input[0] === "number") return [input as number[]];
  return input as Array<string | number[]>;
}

/** Little-endian float32 bytes in base64, the encoding OpenAI clients decode. */
export const embeddingToBase64 = (v: number[]) => Buffer.from(new Float32Array(v).buffer).toString("base64");
