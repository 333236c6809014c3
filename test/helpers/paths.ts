import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { findLlamaServer } from "../../src/runtimes/llama-server/llama-server-bin.js";

/** The repository root (tests run from dist/test/..., sources live in test/...). */
export const repoRoot = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

/** The CLI entry as built by tsc. */
export const cliPath = path.join(repoRoot, "dist/src/main.cjs");

/**
 * Folder of the real test models (../shared/models beside the repo, or INFERNO_SHARED_MODELS).
 * Undefined when absent, unless INFERNO_REQUIRE_REAL_MODELS=1 (CI), where absence is an error.
 */
export function sharedModelsDir(): string | undefined {
  const dir = process.env.INFERNO_SHARED_MODELS ?? path.resolve(repoRoot, "../shared/models");
  if (existsSync(path.join(dir, "MODELS.md"))) return dir;
  if (process.env.INFERNO_REQUIRE_REAL_MODELS === "1") {
    throw new Error(`real-model tests are required but ${dir} is missing (set INFERNO_SHARED_MODELS)`);
  }
  return undefined;
}

/** Options for `test()` that skip a real-model test when the models are not there. */
export function realModel(file: string): { skip: string | false; path: string } {
  const dir = sharedModelsDir();
  return dir ? { skip: false, path: path.join(dir, file) } : { skip: "../shared/models not present", path: "" };
}

export async function tempDir(prefix = "inferno-test-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The llama-server binary for the llama-server engine's tests (npm run build:llama-server, or
 * INFERNO_LLAMA_SERVER). Those tests skip without one, unless INFERNO_REQUIRE_LLAMA_SERVER=1 (CI builds it).
 */
export function llamaServerBinary(): { skip: string | false; path: string } {
  const found = findLlamaServer({ repoRoot });
  if (found) return { skip: false, path: found.path };
  if (process.env.INFERNO_REQUIRE_LLAMA_SERVER === "1") {
    throw new Error("llama-server engine tests are required but llama-server is not built (npm run build:llama-server)");
  }
  return { skip: "llama-server not built (npm run build:llama-server)", path: "" };
}
