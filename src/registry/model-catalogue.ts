// The catalogue: what models exist (found in the models dir, or registered by path and persisted), their
// header facts and the options their runtime accepts. What is loaded is the loader's (model-loader.ts).
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Logger } from "../core/logger.js";
import { InfernoError } from "../errors/catalogue.js";
import { isValidModelId, modelTypeOf, realRoots, resolveAllowedModelPath, type ModelType } from "./model-paths.js";
import type { ModelEntry, ModelFacts, ModelRuntime } from "./model-registry.js";
import { RegistrationStore, type Registration } from "./registration-store.js";

export interface CatalogueOptions {
  modelsDir: string;
  dataDir: string;
  modelRoots: readonly string[];
  runtimes: Partial<Record<ModelType, ModelRuntime>>;
  log: Logger;
}

export class ModelCatalogue {
  private discovered = new Map<string, ModelEntry>();
  private registered = new Map<string, ModelEntry>();
  private readonly store: RegistrationStore;
  private readonly factsCache = new Map<string, { key: string; facts: ModelFacts }>();

  constructor(private readonly opts: CatalogueOptions) {
    this.store = new RegistrationStore(opts.dataDir);
  }

  async init(): Promise<void> {
    for (const r of await this.store.load()) {
      const type = modelTypeOf(r.path);
      if (!type || !isValidModelId(r.id)) continue;
      const size = await fs.stat(r.path).then((s) => s.size, () => 0);
      if (size === 0) this.opts.log.warn({ model: r.id, path: r.path }, "registered model file is missing");
      this.registered.set(r.id, { ...r, type, source: "registered", sizeBytes: size });
    }
    await this.scan();
  }

  /** Re-reads the models dir: cheap (one readdir and a stat per file), so files dropped in later show up. */
  async scan(): Promise<void> {
    const dir = this.opts.modelsDir;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") names = [];
      else throw err;
    }
    const roots = await realRoots([dir, ...this.opts.modelRoots]);
    const found = new Map<string, ModelEntry>();
    for (const file of names) {
      const type = modelTypeOf(file);
      if (!type || file.startsWith(".")) continue;
      const id = file.slice(0, -path.extname(file).length);
      if (!isValidModelId(id)) {
        this.opts.log.warn({ file }, "skipping model file: its name is not a valid model id");
        continue;
      }
      const prev = this.discovered.get(id);
      try {
        const real = await fs.realpath(path.join(dir, file));
        if (!roots.some((r) => real === r || real.startsWith(r + path.sep))) {
          this.opts.log.warn({ file, target: real }, "skipping symlink that leaves the allowed model roots");
          continue;
        }
        const st = await fs.stat(real);
        if (!st.isFile()) continue;
        found.set(id, {
          id, name: id, type, path: real, source: "models-dir", options: {},
          sizeBytes: st.size, created: prev?.created ?? Math.floor(st.mtimeMs / 1000),
        });
      } catch {
        continue; // dangling symlink or a file removed while scanning
      }
    }
    this.discovered = found;
  }

  list(): ModelEntry[] {
    const all = new Map([...this.discovered, ...this.registered]);
    return [...all.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The entry for an id; a miss rescans the models dir once before answering MODEL_NOT_FOUND. */
  async get(id: string): Promise<ModelEntry> {
    const hit = this.registered.get(id) ?? this.discovered.get(id);
    if (hit) return hit;
    await this.scan();
    const again = this.registered.get(id) ?? this.discovered.get(id);
    if (again) return again;
    throw new InfernoError("MODEL_NOT_FOUND", `model '${id}' not found`, { available_models: this.list().map((m) => m.id) });
  }

  async register(input: { name: string; path: string; options?: Record<string, unknown> }): Promise<ModelEntry> {
    if (!isValidModelId(input.name)) {
      throw new InfernoError("INVALID_REQUEST", "name must be 1-128 chars of letters, digits, '.', '_' or '-'", undefined, { param: "name" });
    }
    const resolved = await resolveAllowedModelPath(input.path, this.opts.modelsDir, this.opts.modelRoots);
    if (this.registered.has(input.name) || this.discovered.has(input.name)) {
      throw new InfernoError("MODEL_EXISTS", `a model named '${input.name}' already exists`, { model: input.name });
    }
    this.checkOptions(resolved.type, input.options ?? {});
    const runtime = this.runtimeFor(resolved.type);
    await runtime.inspect(resolved.path);
    await runtime.verify?.(resolved.path);
    const entry: ModelEntry = {
      id: input.name, name: input.name, type: resolved.type, path: resolved.path, source: "registered",
      options: input.options ?? {}, sizeBytes: resolved.sizeBytes, created: Math.floor(Date.now() / 1000),
    };
    this.registered.set(entry.id, entry);
    await this.persist();
    return entry;
  }

  /** A registered model's entry; a model from the models dir goes away with its file, not here. */
  async registeredEntry(id: string): Promise<ModelEntry> {
    const entry = await this.get(id);
    if (entry.source !== "registered") {
      throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' comes from the models dir; remove its file to remove it`, { model: id });
    }
    return entry;
  }

  /** Forgets a registration (the file is never touched); the loader has unloaded it. */
  async forget(id: string): Promise<void> {
    this.registered.delete(id);
    await this.persist();
  }

  /** Metadata from the file header (cached per size and mtime), without loading the model. */
  async facts(entry: ModelEntry): Promise<ModelFacts> {
    const st = await fs.stat(entry.path);
    const key = `${st.size}:${st.mtimeMs}`;
    const cached = this.factsCache.get(entry.path);
    if (cached?.key === key) return cached.facts;
    const facts = await this.runtimeFor(entry.type).inspect(entry.path);
    this.factsCache.set(entry.path, { key, facts });
    return facts;
  }

  checkOptions(type: ModelType, options: Record<string, unknown>): void {
    const allowed = this.runtimeFor(type).optionKeys;
    const wrong = Object.keys(options).filter((k) => !allowed.includes(k));
    if (wrong.length) {
      throw new InfernoError("INVALID_REQUEST", `option(s) ${wrong.join(", ")} do not apply to ${type} models (allowed: ${allowed.join(", ")})`, {
        options: wrong,
        allowed,
      }, { param: "options" });
    }
  }

  runtimeFor(type: ModelType): ModelRuntime {
    const runtime = this.opts.runtimes[type];
    if (!runtime) throw new InfernoError("UNSUPPORTED_OPERATION", `no runtime for ${type} models in this server`, { type });
    return runtime;
  }

  private persist(): Promise<void> {
    const regs: Registration[] = [...this.registered.values()].map(({ id, name, path: p, options, created }) => ({
      id, name, path: p, options, created,
    }));
    return this.store.save(regs);
  }
}
