import type Database from "better-sqlite3";
import type { GenerationResult } from "../core/generation.js";
import type { ModelCapabilities } from "../core/capabilities.js";
import type { Logger } from "../core/logger.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";
import type { BudgetSetting, MemoryProbe, MemoryUse } from "./memory-budget.js";
import { ModelCatalogue } from "./model-catalogue.js";
import { ModelLoader } from "./model-loader.js";
import type { ModelType } from "./model-paths.js";

/** What the registry needs from a runtime: validate a file cheaply, and load it. */
export interface ModelRuntime {
  /** Checks the file without loading it; throws INVALID_MODEL_FILE. Returns facts shown in model info. */
  inspect(filePath: string): Promise<ModelFacts>;
  /** The deeper check before a file first reaches native code in this process (may take seconds); throws INVALID_MODEL_FILE. */
  verify?(filePath: string): Promise<void>;
  load(filePath: string, options: Record<string, unknown>, signal?: AbortSignal): Promise<LoadedModel>;
  /** The memory a load with these options will take (RAM and GPU memory), without loading. */
  estimate(filePath: string, options: Record<string, unknown>): Promise<MemoryUse>;
  /** What a model with these header facts, loaded with these options, can do (src/core/capabilities.ts). */
  capabilities(facts: ModelFacts, options: Record<string, unknown>): ModelCapabilities;
  /** Load options this runtime understands; others are refused rather than silently ignored. */
  optionKeys: readonly string[];
}

export interface ModelFacts {
  contextLength?: number | undefined;
  [key: string]: unknown;
}

export interface ModelEntry {
  id: string;
  name: string;
  type: ModelType;
  path: string;
  /** Where it comes from: a file of the models dir, a registration by path, or the shipped demo models. */
  source: "models-dir" | "registered" | "demo";
  options: Record<string, unknown>;
  sizeBytes: number;
  created: number;
  /** A registration whose file is gone (renamed or deleted): listed, never served, back when the file is. */
  missing?: boolean;
}

export interface RegistryOptions {
  modelsDir: string;
  /** Where an older Inferno's registrations.json may wait to be imported. */
  dataDir: string;
  /** The data dir's database (src/store/database.ts), where registrations are kept. */
  db: Database.Database;
  /** Serve the demo models (demo/models) while there is no other model (config demoModels). */
  demoModels?: boolean;
  /** Where the demo models are; default: demo/models of this checkout or image. */
  demoDir?: string;
  modelRoots: readonly string[];
  runtimes: Partial<Record<ModelType, ModelRuntime>>;
  log: Logger;
  /** Idle time after which a loaded model is unloaded (ms); null keeps models loaded. */
  keepAliveMs?: number | null;
  memory?: MemoryPolicy;
}

/** Limits on what loaded models may hold together (config memoryBudget, vramBudget, maxLoadedModels). */
export interface MemoryPolicy {
  ram: BudgetSetting;
  vram: "auto" | { bytes: number };
  /** 0: no limit. */
  maxLoaded: number;
  probe?: MemoryProbe;
}

/**
 * What the registry tells its observers (metrics, traces), so the runtime and scheduler layers never
 * import Fastify or metrics. Durations are in milliseconds; `queue` is the wait for a free sequence.
 */
export type RegistryEvent =
  | { kind: "generation"; model: string; route?: string; result: GenerationResult; request?: GenerationFacts }
  | { kind: "queue"; model: string; ms: number }
  | { kind: "load"; model: string; ms: number }
  | { kind: "unload"; model: string; ms: number; reason: UnloadReason }
  | { kind: "tensor-run"; model: string; ms: number; batch: number };

/** What traces tell of a generation beside its result: what was asked, and how long it waited for a sequence. */
export interface GenerationFacts {
  operation: "chat" | "text_completion";
  maxTokens: number;
  temperature: number;
  queueMs: number;
}

/**
 * Why a model left memory: asked to, idle past its keep-alive, to make room for another, reloaded, broken,
 * or removed (it left the catalogue or its file went missing).
 */
export type UnloadReason = "request" | "keep_alive" | "make_room" | "reload" | "broken" | "removed";

/**
 * Every model, through one object: the catalogue (what exists, model-catalogue.ts) and the loader (what
 * is in memory, model-loader.ts), and the observers of what happens to them (metrics, traces).
 */
export class ModelRegistry {
  readonly catalogue: ModelCatalogue;
  readonly loader: ModelLoader;
  private readonly listeners = new Set<(event: RegistryEvent) => void>();

  constructor(private readonly opts: RegistryOptions) {
    // A model that stops being servable (gone from the models dir, demo models replaced, file missing)
    // leaves memory once its requests are done.
    this.catalogue = new ModelCatalogue({ ...opts, onUnavailable: (ids) => ids.forEach((id) => this.loader.retire(id)) });
    this.loader = new ModelLoader(this.catalogue, { log: opts.log, keepAliveMs: opts.keepAliveMs, memory: opts.memory, emit: (e) => this.emit(e) });
  }

  // What exists.
  init = () => this.catalogue.init();
  scan = () => this.catalogue.scan();
  list = () => this.catalogue.list();
  get = (id: string) => this.catalogue.get(id);
  register = (input: { name: string; path: string; options?: Record<string, unknown> }) => this.catalogue.register(input);
  facts = (entry: ModelEntry) => this.catalogue.facts(entry);
  /** What the start-up banner says: how many models, whether they are the demo models. */
  summary = () => this.catalogue.summary();

  /** Forgets a registration, unloading the model first (the file is never touched). */
  async unregister(id: string): Promise<ModelEntry> {
    const entry = await this.catalogue.registeredEntry(id);
    await this.loader.unload(id);
    await this.catalogue.forget(id);
    return entry;
  }

  /**
   * What a model can do: the loaded model's capabilities, else what its file and registration options
   * give (without loading it).
   */
  async capabilities(entry: ModelEntry): Promise<ModelCapabilities> {
    const loaded = this.loader.getLoaded(entry.id);
    if (loaded) return { capabilities: loaded.capabilities, note: loaded.capabilityNote };
    return this.catalogue.runtimeFor(entry.type).capabilities(await this.catalogue.facts(entry), entry.options);
  }

  // What is in memory.
  getLoaded = (id: string) => this.loader.getLoaded(id);
  loadedModels = () => this.loader.loadedModels();
  load = (id: string, options: Record<string, unknown> = {}) => this.loader.load(id, options);
  acquire = (id: string) => this.loader.acquire(id);
  unload = (id: string, reason?: UnloadReason) => this.loader.unload(id, reason);
  memoryStatus = () => this.loader.memoryStatus();
  setKeepAlive = (id: string, ms: number | null) => this.loader.setKeepAlive(id, ms);
  expiresAt = (id: string) => this.loader.expiresAt(id);
  close = () => this.loader.close();

  get defaultKeepAliveMs(): number | null {
    return this.loader.defaultKeepAliveMs;
  }

  /** Calls `listener` synchronously with every event (in the emitter's async context); returns the unsubscribe. */
  observe(listener: (event: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An observer that throws is logged; it never fails the request that emitted the event. */
  emit(event: RegistryEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.opts.log.warn({ err, event: event.kind }, "registry observer failed");
      }
    }
  }
}
