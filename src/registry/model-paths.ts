import { promises as fs } from "node:fs";
import path from "node:path";
import { InfernoError } from "../errors/catalogue.js";

export type ModelType = "gguf" | "onnx";

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Model ids travel in URLs and file names, so they are kept to a small safe charset. */
export function isValidModelId(id: string): boolean {
  return MODEL_ID.test(id) && !id.includes("..");
}

export function modelTypeOf(file: string): ModelType | undefined {
  const ext = path.extname(file).toLowerCase();
  return ext === ".gguf" ? "gguf" : ext === ".onnx" ? "onnx" : undefined;
}

const isInside = (root: string, p: string) => {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
};

/** Real paths of the folders models may live under; a missing root is skipped. */
export async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    try {
      out.push(await fs.realpath(r));
    } catch {
      /* a root that does not exist holds no models */
    }
  }
  return out;
}

/**
 * Resolves a user-given model path (relative paths are relative to the models dir), follows every
 * symlink, and refuses anything that does not end up under one of the allowed roots.
 */
export async function resolveAllowedModelPath(
  userPath: string,
  modelsDir: string,
  allowedRoots: readonly string[],
): Promise<{ path: string; type: ModelType; sizeBytes: number }> {
  if (typeof userPath !== "string" || userPath.length === 0 || userPath.includes("\0")) {
    throw new InfernoError("INVALID_REQUEST", "path must be a non-empty string", undefined, { param: "path" });
  }
  const absolute = path.resolve(modelsDir, userPath);
  const roots = await realRoots([modelsDir, ...allowedRoots]);
  let real: string;
  try {
    real = await fs.realpath(absolute);
  } catch {
    // Checked before existence so that probing outside the roots reveals nothing.
    if (!roots.some((r) => isInside(r, path.resolve(absolute)))) throw pathNotAllowed(userPath);
    throw new InfernoError("INVALID_REQUEST", `model file not found: ${userPath}`, { path: userPath }, { param: "path" });
  }
  if (!roots.some((r) => isInside(r, real))) throw pathNotAllowed(userPath);
  const type = modelTypeOf(real);
  if (!type) {
    throw new InfernoError("INVALID_MODEL_FILE", "a model file must end in .gguf or .onnx", { path: userPath }, { param: "path" });
  }
  const st = await fs.stat(real);
  if (!st.isFile()) throw new InfernoError("INVALID_MODEL_FILE", "model path is not a regular file", { path: userPath });
  return { path: real, type, sizeBytes: st.size };
}

function pathNotAllowed(userPath: string): InfernoError {
  return new InfernoError(
    "PATH_NOT_ALLOWED",
    "model path is outside the models dir and the allowed model roots (--model-root)",
    { path: userPath },
    { param: "path" },
  );
}
