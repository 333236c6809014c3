import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { loadConfig } from "../config/config.js";
import type { Logger } from "../core/logger.js";
import { LEGACY_FILE } from "../registry/legacy-registrations.js";
import { ModelRegistry } from "../registry/model-registry.js";
import { modelTypeOf } from "../registry/model-paths.js";
import { openDatabase } from "../store/database.js";
import { inspectGguf } from "../runtimes/llama/llama-runtime.js";

const quietLog: Logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

const human = (n: number) => {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};

/**
 * The data dir's database, where registrations are; an empty one in memory when the data dir has no
 * state yet, so that listing creates none.
 */
function registrationsDb(dataDir: string): Database.Database {
  const state = ["inferno.db", LEGACY_FILE].some((f) => existsSync(path.join(dataDir, f)));
  return state ? openDatabase(dataDir) : new Database(":memory:");
}

/** `inferno models list`: what the server would serve, without starting it. */
export async function modelsList(flags: Record<string, unknown>, json: boolean): Promise<void> {
  const config = loadConfig({ flags });
  const db = registrationsDb(config.dataDir);
  let models;
  try {
    const registry = new ModelRegistry({ ...config, db, log: quietLog, runtimes: {} });
    await registry.init();
    models = registry.list();
  } finally {
    db.close();
  }
  if (json) {
    const rows = models.map(({ id, type, path: p, sizeBytes, source, missing }) => ({ id, type, path: p, size_bytes: sizeBytes, source, missing: missing === true }));
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  if (models.length === 0) {
    console.log(`no models in ${config.modelsDir} (add one with: npx inferno pull URL)`);
    return;
  }
  const rows = models.map((m) => [m.id, m.type, human(m.sizeBytes), m.missing ? `${m.source} (file missing)` : m.source, m.path]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), ["ID", "TYPE", "SIZE", "SOURCE"][i]!.length));
  const line = (r: string[]) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join("  ");
  console.log(line(["ID", "TYPE", "SIZE", "SOURCE", "PATH"]));
  for (const r of rows) console.log(line(r));
  if (models.some((m) => m.source === "demo")) {
    console.log(`(demo models: ${config.modelsDir} holds no model yet; --demo-models false hides them)`);
  }
}

/** `inferno models info FILE`: header facts of a model file, read without loading it. */
export async function modelsInfo(file: string, json: boolean): Promise<void> {
  const resolved = path.resolve(file);
  const st = await fs.stat(resolved);
  const type = modelTypeOf(resolved);
  if (type !== "gguf") {
    const facts = { file: resolved, type: type ?? "unknown", size_bytes: st.size };
    console.log(json ? JSON.stringify(facts, null, 2) : Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join("\n"));
    return;
  }
  const s = await inspectGguf(resolved);
  const { chat_template, ...rest } = s;
  if (json) {
    console.log(JSON.stringify({ file: resolved, type, ...rest, chat_template: chat_template ?? null }, null, 2));
    return;
  }
  const lines: Array<[string, unknown]> = [
    ["file", resolved],
    ["type", "gguf"],
    ["architecture", s.architecture],
    ["name", s.name ?? "-"],
    ["parameters", s.parameters.toLocaleString("en-US")],
    ["context length", s.context_length ?? "-"],
    ["embedding length", s.embedding_length ?? "-"],
    ["layers", s.block_count ?? "-"],
    ["quantization", s.quantization],
    ["size", `${human(s.size_bytes)} (${s.size_bytes} bytes)`],
    ["chat template", s.has_chat_template ? "yes" : "no"],
  ];
  for (const [k, v] of lines) console.log(`${k.padEnd(17)}${String(v)}`);
}
