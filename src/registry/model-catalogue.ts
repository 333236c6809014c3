// The catalogue: what models exist (found in the models dir, registered by path and kept in the database,
// or the shipped demo models while there is no other), their header facts and the options their runtime
// accepts. What is loaded is the loader's (model-loader.ts).
import { promises as fs } from "node:fs";
import type Database from "better-sqlite3";
import type { Logger } from "../core/logger.js";
import { InfernoError } from "../errors/catalogue.js";
import { defaultDemoDir, readDemoModels } from "./demo-models.js";
import { importLegacyRegistrations } from "./legacy-registrations.js";
import { scanModelDir } from "./model-dir-scan.js";
import { isValidModelId, modelTypeOf, resolveAllowedModelPath, type ModelType } from "./model-paths.js";
import type { ModelEntry, ModelFacts, ModelRuntime } from "./model-registry.js";
import { RegistrationStore } from "./registration-store.js";

export interface CatalogueOptions {
  modelsDir: string;
  dataDir: string;
  db: Database.Database;
  modelRoots: readonly string[];
  runtimes: Partial<Record<ModelType, ModelRuntime>>;
  log: Logger;
  demoModels?: boolean;
  demoDir?: string;
  /** Told the ids that stopped being servable: gone from the catalogue, or their file missing. */
  onUnavailable?: (ids: string[]) => void;
}

/** The catalogue in a few numbers, for the start-up banner. */
export interface CatalogueSummary {
  /** Models listed, missing ones included. */
  count: number;
  /** Registered models whose file is missing. */
  missing: number;
  /** Whether what is listed is the demo models (nothing of the user's own). */
  demo: boolean;
  modelsDir: string;
}

const fileMissing = (entry: ModelEntry) =>
  new InfernoError(
    "MODEL_FILE_MISSING",
    `model '${entry.id}' is registered but its file is missing; restore the file, or DELETE /models/${entry.id} to forget it`,
    { model: entry.id },
  );

export class ModelCatalogue {
  private discovered = new Map<string, ModelEntry>();
  private registered = new Map<string, ModelEntry>();
  /** The demo models while they are served, else empty. */
  private demo = new Map<string, ModelEntry>();
  private demoEntries: Map<string, ModelEntry> | undefined;
  private readonly demoDir: string | undefined;
  /** Base names shared by several model files at the last scan (with the files), to warn once per change. */
  private shared = new Map<string, string>();
  private readonly store: RegistrationStore;
  private readonly factsCache = new Map<string, { key: string; facts: ModelFacts }>();
  private scanning: Promise<void> | undefined;
  private rescan: Promise<void> | undefined;

  constructor(private readonly opts: CatalogueOptions) {
    this.store = new RegistrationStore(opts.db);
    this.demoDir = opts.demoModels ? (opts.demoDir ?? defaultDemoDir()) : undefined;
    if (opts.demoModels && !this.demoDir) opts.log.warn("demo models not found (no demo/models beside the server); none are served");
  }

  async init(): Promise<void> {
    await importLegacyRegistrations(this.store, this.opts.dataDir, this.opts.log);
    for (const r of this.store.list()) {
      const type = modelTypeOf(r.path);
      if (!type || !isValidModelId(r.id)) continue;
      this.registered.set(r.id, { ...r, type, source: "registered", sizeBytes: 0 });
    }
    await this.scan();
  }

  /**
   * Re-reads the models dir and checks every registered file: cheap (a readdir and a stat per file), so
   * files dropped in or removed later show up. One scan at a time; a call during a scan gets the next
   * one, which sees whatever changed before the call.
   */
  scan(): Promise<void> {
    if (!this.scanning) {
      this.scanning = this.change(() => this.scanOnce()).finally(() => (this.scanning = undefined));
      return this.scanning;
    }
    this.rescan ??= this.scanning.catch(() => undefined).then(() => {
      this.rescan = undefined;
      return this.scan();
    });
    return this.rescan;
  }

  private async scanOnce(): Promise<void> {
    const { modelsDir, modelRoots, log } = this.opts;
    const found = await scanModelDir(modelsDir, { roots: modelRoots, source: "models-dir", prev: this.discovered, log });
    this.discovered = found.entries;
    this.warnShared(found.shared);
    for (const entry of [...this.registered.values()]) await this.checkRegistered(entry);
  }

  /** Every model, missing registrations included, by id. */
  list(): ModelEntry[] {
    const all = new Map([...this.demo, ...this.discovered, ...this.registered]);
    return [...all.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Whether the demo models are what is served (no model file in the models dir, no registration). */
  get demoActive(): boolean {
    return this.demo.size > 0;
  }

  summary(): CatalogueSummary {
    const models = this.list();
    return { count: models.length, missing: models.filter((m) => m.missing).length, demo: this.demoActive, modelsDir: this.opts.modelsDir };
  }

  /** The entry for an id (a missing registration too); a miss rescans the models dir once before answering MODEL_NOT_FOUND. */
  async get(id: string): Promise<ModelEntry> {
    const hit = this.lookup(id);
    if (hit) return hit;
    await this.scan();
    const again = this.lookup(id);
    if (again) return again;
    throw new InfernoError("MODEL_NOT_FOUND", `model '${id}' not found`, { available_models: this.list().map((m) => m.id) });
  }

  /** The entry of a model that may be served: a registration whose file is missing is MODEL_FILE_MISSING. */
  async servable(id: string): Promise<ModelEntry> {
    const entry = await this.get(id);
    if (entry.missing) throw fileMissing(entry);
    return entry;
  }

  /** Just before a load: the file is still there. One gone since the last scan is noticed here. */
  async ensureFile(entry: ModelEntry): Promise<void> {
    const st = await fs.stat(entry.path).catch(() => undefined);
    if (!st?.isFile()) await this.gone(entry);
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
    await this.change(() => {
      const { id, name, path, options, created } = entry;
      this.store.add({ id, name, path, options, created });
      this.registered.set(entry.id, entry);
    });
    return entry;
  }

  /** A registered model's entry; a model from the models dir goes away with its file, not here. */
  async registeredEntry(id: string): Promise<ModelEntry> {
    const entry = await this.get(id);
    if (entry.source !== "registered") {
      const where = entry.source === "demo" ? "is a demo model (turn them off with demoModels: false)" : "comes from the models dir; remove its file to remove it";
      throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' ${where}`, { model: id });
    }
    return entry;
  }

  /** Forgets a registration (the file is never touched); the loader has unloaded it. */
  async forget(id: string): Promise<void> {
    await this.change(() => {
      this.store.delete(id);
      this.registered.delete(id);
    });
  }

  /** Metadata from the file header (cached per size and mtime), without loading the model. */
  async facts(entry: ModelEntry): Promise<ModelFacts> {
    if (entry.missing) throw fileMissing(entry);
    const st = await fs.stat(entry.path).catch(() => undefined);
    if (!st) return this.gone(entry);
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

  private lookup(id: string): ModelEntry | undefined {
    return this.registered.get(id) ?? this.discovered.get(id) ?? this.demo.get(id);
  }

  /** The coded answer for an entry whose file has gone since the catalogue last looked. */
  private async gone(entry: ModelEntry): Promise<never> {
    if (entry.source === "registered") {
      await this.change(async () => void (await this.checkRegistered(entry)));
      throw fileMissing(entry);
    }
    await this.scan();
    throw new InfernoError("MODEL_NOT_FOUND", `model '${entry.id}' not found (its file is gone)`, { available_models: this.list().map((m) => m.id) });
  }

  /** Marks a registration missing or present again by a stat of its file; logs when that changes. */
  private async checkRegistered(entry: ModelEntry): Promise<void> {
    const st = await fs.stat(entry.path).catch(() => undefined);
    const missing = st?.isFile() !== true;
    const current = this.registered.get(entry.id);
    if (!current || current.path !== entry.path) return; // forgotten meanwhile
    if (missing !== (current.missing === true)) {
      if (missing) this.opts.log.warn({ model: entry.id, path: entry.path }, "registered model file is missing: listed as missing, not served until it is back");
      else this.opts.log.info({ model: entry.id, path: entry.path }, "registered model file is back");
    }
    this.registered.set(entry.id, { ...current, missing, sizeBytes: st?.isFile() ? st.size : current.sizeBytes });
  }

  /**
   * Runs a change of the catalogue, then puts the demo models in or out, and tells `onUnavailable` the
   * ids that could be served before and cannot now.
   */
  private async change(fn: () => void | Promise<void>): Promise<void> {
    const before = this.servableIds();
    await fn();
    await this.refreshDemo();
    const after = this.servableIds();
    const gone = [...before].filter((id) => !after.has(id));
    if (gone.length > 0) this.opts.onUnavailable?.(gone);
  }

  private servableIds(): Set<string> {
    return new Set(this.list().filter((m) => !m.missing).map((m) => m.id));
  }

  /** The demo models are served exactly while the models dir holds no model file and nothing is registered. */
  private async refreshDemo(): Promise<void> {
    const wanted = () => this.demoDir !== undefined && this.discovered.size === 0 && this.registered.size === 0;
    if (wanted() && !this.demoEntries) this.demoEntries = await readDemoModels(this.demoDir!, this.opts.log);
    const next = wanted() ? this.demoEntries! : new Map<string, ModelEntry>();
    if (next.size > 0 && !this.demoActive) {
      this.opts.log.info(
        { models: [...next.keys()], models_dir: this.opts.modelsDir },
        "no model in the models dir and none registered: serving the demo models (demoModels: false turns them off)",
      );
    } else if (next.size === 0 && this.demoActive) {
      this.opts.log.info({ models_dir: this.opts.modelsDir }, "models of your own are there: the demo models are no longer served");
    }
    this.demo = next;
  }

  /** Warns once per change (not at every scan) about model files that share a base name. */
  private warnShared(shared: Map<string, string[]>): void {
    const next = new Map([...shared].map(([base, files]) => [base, files.join("\n")]));
    for (const [base, files] of shared) {
      if (this.shared.get(base) === next.get(base)) continue;
      this.opts.log.warn({ files }, `model files ${files.join(" and ")} share the base name '${base}': each is listed under its file name as its id`);
    }
    this.shared = next;
  }
}
