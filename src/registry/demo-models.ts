// The demo models that ship in demo/models: served while the server would otherwise have no model at all,
// so that a fresh clone or image answers offline (`npm ci && npm start`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Logger } from "../core/logger.js";
import { scanModelDir } from "./model-dir-scan.js";
import type { ModelEntry } from "./model-registry.js";

/**
 * demo/models at the root of the checkout or image, found from this file: dist/src/registry/ once compiled
 * (so /app/demo/models in the Docker image), src/registry/ when run from sources. Undefined when absent.
 */
export function defaultDemoDir(): string | undefined {
  for (const up of ["../../../demo/models", "../../demo/models"]) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  return undefined;
}

/** The demo folder's models (`source: "demo"`); a folder that cannot be read gives none, with a warning. */
export async function readDemoModels(dir: string, log: Logger): Promise<Map<string, ModelEntry>> {
  try {
    return (await scanModelDir(dir, { roots: [], source: "demo", prev: new Map(), log })).entries;
  } catch (err) {
    log.warn({ err, dir }, "cannot read the demo models");
    return new Map();
  }
}
