// Ollama's POST /api/pull over the server-side pull. Ollama pulls names from its registry ("llama3",
// "hf.co/OWNER/REPO:Q4_K_M"); Inferno has no registry, so `model` must be a source the native route
// takes: hf:OWNER/REPO[@REVISION]/FILE or an http(s) URL. The file name stands in for Ollama's layer
// digest (Ollama's clients key their progress bars by it; the sha256 is only known at the end).
import { z } from "zod";
import { InfernoError } from "../../errors/catalogue.js";
import type { StartedPull } from "../../services/pull.js";

const name = z.string().min(1).max(4096);

export const pullBody = z.object({
  model: name.nullish(),
  /** Ollama's older field for `model`. */
  name: name.nullish(),
  /** Ollama's "allow an insecure registry"; there is none here, and http URLs are taken as they are. */
  insecure: z.boolean().nullish(),
  stream: z.boolean().nullish(),
});

/** The pull source an Ollama model name stands for, or a refusal that says what to send instead. */
export function pullSourceOf(model: string): string {
  if (/^hf:/i.test(model) || /^https?:\/\//i.test(model)) return model;
  const hint = /^(hf\.co|huggingface\.co)\//i.test(model)
    ? "; Ollama's hf.co/OWNER/REPO:TAG picks a file by tag, here name the file: hf:OWNER/REPO/FILE.gguf"
    : "";
  throw new InfernoError(
    "INVALID_REQUEST",
    `'${model}' names a model in Ollama's registry, which Inferno cannot pull from: pull an hf:OWNER/REPO[@REVISION]/FILE.gguf or http(s) URL source instead${hint}`,
    { model, reason: "NO_REGISTRY" },
    { param: "model" },
  );
}

/** Ollama's progress lines: pulling manifest, downloading (digest, total, completed), verifying, success. */
export async function* pullLines(pull: StartedPull): AsyncGenerator<Record<string, unknown>> {
  yield { status: "pulling manifest" };
  for await (const e of pull.events) {
    if (e.status === "downloading") {
      yield { status: "downloading", digest: pull.fileName, ...(e.total === null ? {} : { total: e.total }), completed: e.completed };
    } else if (e.status === "verifying") {
      yield { status: "verifying sha256 digest" };
    } else {
      yield { status: "success" };
    }
  }
}
