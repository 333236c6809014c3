// One folder's model files as catalogue entries: the models dir at every scan, the demo folder once.
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Logger } from "../core/logger.js";
import { isValidModelId, modelTypeOf, realRoots, type ModelType } from "./model-paths.js";
import type { ModelEntry } from "./model-registry.js";

export interface DirScan {
  entries: Map<string, ModelEntry>;
  /** Base names that more than one model file shares, with those files (sorted). */
  shared: Map<string, string[]>;
}

interface Candidate {
  file: string;
  base: string;
  type: ModelType;
  real: string;
  size: number;
  mtimeMs: number;
}

/**
 * Every `.gguf` and `.onnx` file of `dir` (not hidden, a regular file, symlinks only into `roots`). A
 * file's id is its name without the extension, unless another model file shares that base name
 * (`a.gguf` and `a.onnx`): then each is listed under its whole file name (`a.gguf`, `a.onnx`), so
 * neither hides the other. A missing folder holds no models. `prev` keeps each id's `created`.
 */
export async function scanModelDir(
  dir: string,
  opts: { roots: readonly string[]; source: ModelEntry["source"]; prev: ReadonlyMap<string, ModelEntry>; log: Logger },
): Promise<DirScan> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") names = [];
    else throw err;
  }
  const roots = await realRoots([dir, ...opts.roots]);
  const candidates: Candidate[] = [];
  for (const file of names.sort()) {
    const type = modelTypeOf(file);
    if (!type || file.startsWith(".")) continue;
    try {
      const real = await fs.realpath(path.join(dir, file));
      if (!roots.some((r) => real === r || real.startsWith(r + path.sep))) {
        opts.log.warn({ file, target: real }, "skipping symlink that leaves the allowed model roots");
        continue;
      }
      const st = await fs.stat(real);
      if (!st.isFile()) continue;
      candidates.push({ file, base: file.slice(0, -path.extname(file).length), type, real, size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      continue; // dangling symlink or a file removed while scanning
    }
  }
  const byBase = new Map<string, Candidate[]>();
  for (const c of candidates) byBase.set(c.base, [...(byBase.get(c.base) ?? []), c]);
  const entries = new Map<string, ModelEntry>();
  const shared = new Map<string, string[]>();
  for (const [base, group] of byBase) {
    if (group.length > 1) shared.set(base, group.map((c) => c.file));
    for (const c of group) {
      const id = group.length > 1 ? c.file : base;
      if (!isValidModelId(id)) {
        opts.log.warn({ file: c.file }, "skipping model file: its name is not a valid model id");
        continue;
      }
      if (entries.has(id)) {
        opts.log.warn({ file: c.file, id }, "skipping model file: another file of this folder already has its id");
        continue;
      }
      entries.set(id, {
        id, name: id, type: c.type, path: c.real, source: opts.source, options: {},
        sizeBytes: c.size, created: opts.prev.get(id)?.created ?? Math.floor(c.mtimeMs / 1000),
      });
    }
  }
  return { entries, shared };
}
