import { promises as fs } from "node:fs";
import path from "node:path";
import type { GenerationResult } from "../core/generation.js";
import type { ModelCapabilities } from "../core/capabilities.js";
import type { Logger } from "../core/logger.js";
import { InfernoError } from "../errors/catalogue.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";
import { AUTO_RAM_SHARE, AUTO_VRAM_SHARE, formatBytes, NO_MEMORY, planLoad, systemProbe, type BudgetSetting, type Candidate, type MemoryProbe, type MemoryUse } from "./memory-budget.js";
import { isValidModelId, modelTypeOf, realRoots, resolveAllowedModelPath, type ModelType } from "./model-paths.js";
import { RegistrationStore, type Registration } from "./registration-store.js";

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
  source: "models-dir" | "registered";
  options: Record<string, unknown>;
  sizeBytes: number;
  created: number;
}

export interface RegistryOptions {
  modelsDir: string;
  dataDir: string;
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
  | { kind: "generation"; model: string; route?: string; result: GenerationResult }
  | { kind: "queue"; model: string; ms: number }
  | { kind: "load"; model: string; ms: number }
  | { kind: "unload"; model: string; ms: number; reason: UnloadReason }
  | { kind: "tensor-run"; model: string; ms: number; batch: number };

/** Why a model left memory: asked to, idle past its keep-alive, to make room for another, reloaded, or broken. */
export type UnloadReason = "request" | "keep_alive" | "make_room" | "reload" | "broken";

/** Re-check period for a model whose keep-alive ran out while it was still serving. */
const BUSY_RECHECK_MS = 1000;

/** Knows every model (discovered in the models dir or registered by path) and which are loaded. */
export class ModelRegistry {
  private discovered = new Map<string, ModelEntry>();
  private registered = new Map<string, ModelEntry>();
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private readonly expiry = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  private readonly store: RegistrationStore;
  private readonly factsCache = new Map<string, { key: string; facts: ModelFacts }>();
  private readonly listeners = new Set<(event: RegistryEvent) => void>();
  /** When each loaded model was last handed to a request: the least recently used idle one goes first. */
  private readonly lastUsed = new Map<string, number>();
  /** Models just handed out by acquire(), until their caller has had the turn to start using them. */
  private readonly holds = new Map<string, number>();
  /** What loads in progress will take, so that two loads at once cannot both count the same free memory. */
  private reserved: MemoryUse = { ...NO_MEMORY };
  private readonly probe: MemoryProbe;
  private readonly policy: MemoryPolicy;
  /** The RAM budget in bytes, fixed at start ("auto": a share of what was available then). */
  readonly ramBudget: number;

  constructor(private readonly opts: RegistryOptions) {
    this.store = new RegistrationStore(opts.dataDir);
    this.policy = opts.memory ?? { ram: "auto", vram: "auto", maxLoaded: 0 };
    this.probe = this.policy.probe ?? systemProbe();
    const ram = this.policy.ram;
    this.ramBudget =
      ram === "auto"
        ? Math.floor(this.probe.availableRam() * AUTO_RAM_SHARE)
        : "percent" in ram
          ? Math.floor((this.probe.totalRam() * ram.percent) / 100)
          : ram.bytes;
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

  /** Forgets a registration (the file is never touched). Models found in the models dir go away with their file. */
  async unregister(id: string): Promise<ModelEntry> {
    const entry = await this.get(id);
    if (entry.source !== "registered") {
      throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' comes from the models dir; remove its file to remove it`, { model: id });
    }
    await this.unload(id);
    this.registered.delete(id);
    await this.persist();
    return entry;
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

  /**
   * What a model can do: the loaded model's capabilities, else what its file and registration options
   * give (without loading it).
   */
  async capabilities(entry: ModelEntry): Promise<ModelCapabilities> {
    const loaded = this.loaded.get(entry.id);
    if (loaded) return { capabilities: loaded.capabilities, note: loaded.capabilityNote };
    return this.runtimeFor(entry.type).capabilities(await this.facts(entry), entry.options);
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

  getLoaded(id: string): LoadedModel | undefined {
    return this.loaded.get(id);
  }

  loadedModels(): Array<[string, LoadedModel]> {
    return [...this.loaded.entries()];
  }

  /**
   * Loads a model once however many callers ask at the same time. Loading an already loaded model with
   * different options reloads it, unless requests are in flight.
   */
  async load(id: string, options: Record<string, unknown> = {}): Promise<LoadedModel> {
    const pending = this.loading.get(id);
    if (pending) return pending;
    // Registered synchronously, before any await, so concurrent callers share this one load.
    const promise = this.loadOnce(id, options).finally(() => this.loading.delete(id));
    this.loading.set(id, promise);
    return promise;
  }

  private async loadOnce(id: string, options: Record<string, unknown>): Promise<LoadedModel> {
    const entry = await this.get(id);
    this.checkOptions(entry.type, options);
    const current = this.loaded.get(id);
    if (current) {
      if (Object.entries(options).every(([k, v]) => current.options[k] === v)) return this.touch(id, current);
      await this.disposeLoaded(id, current, "reload");
    }
    const runtime = this.runtimeFor(entry.type);
    // Before the estimate: node-llama-cpp's estimate reads the vocabulary natively, where a hostile
    // file can already abort the process.
    await runtime.verify?.(entry.path);
    const merged = { ...entry.options, ...options };
    const need = await runtime.estimate(entry.path, merged);
    const freeVram = need.vram > 0 ? await this.probe.freeVram() : null;
    // From here to reserve() nothing awaits, so concurrent loads see each other's reservations.
    const victims = this.makeRoom(id, need, freeVram);
    this.reserve(need, 1);
    let model: LoadedModel;
    try {
      for (const [victim, old] of victims) await this.disposeDetached(victim, old, "make_room");
      model = await runtime.load(entry.path, merged);
    } finally {
      this.reserve(need, -1);
    }
    this.loaded.set(id, model);
    this.opts.log.info({ model: id, load_ms: Math.round(model.loadTimeMs), options: model.options }, "model loaded");
    this.emit({ kind: "load", model: id, ms: model.loadTimeMs });
    return this.touch(id, model);
  }

  /**
   * The loaded model for a request, loading it on first use. The model is held until the caller's next
   * turn of the event loop, so that a load making room cannot unload it before the request starts on it.
   */
  async acquire(id: string): Promise<LoadedModel> {
    let model = this.loaded.get(id);
    if (model?.broken && model.inFlight === 0) {
      this.opts.log.warn({ model: id }, "model stopped working; loading it again");
      await this.disposeLoaded(id, model, "broken").catch(() => undefined);
      model = undefined;
    }
    const ready = model ? this.touch(id, model) : await this.load(id);
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    setImmediate(() => {
      const left = (this.holds.get(id) ?? 1) - 1;
      if (left > 0) this.holds.set(id, left);
      else this.holds.delete(id);
    });
    return ready;
  }

  /** Memory the loaded models hold together, and the limits they are held to (GET /health). */
  memoryStatus() {
    const used = this.usedMemory();
    return {
      budget_bytes: this.ramBudget,
      used_bytes: used.ram,
      vram_used_bytes: used.vram,
      available_bytes: this.probe.availableRam(),
      max_loaded_models: this.policy.maxLoaded,
    };
  }

  private usedMemory(): MemoryUse {
    const used = { ...this.reserved };
    for (const model of this.loaded.values()) {
      const m = model.memoryUsage();
      used.ram += m.ram;
      used.vram += m.vram;
    }
    return used;
  }

  private reserve(need: MemoryUse, sign: 1 | -1): void {
    this.reserved = { ram: this.reserved.ram + sign * need.ram, vram: this.reserved.vram + sign * need.vram };
  }

  /**
   * Synchronously picks the idle models to unload (least recently used first) so that `need` fits, takes
   * them out of the loaded set and returns them for disposal; throws when even that would not be enough.
   * Models with requests in flight, queued or just handed out are never picked.
   */
  private makeRoom(id: string, need: MemoryUse, freeVram: number | null): Array<[string, LoadedModel]> {
    const used = this.usedMemory();
    const vram = this.policy.vram;
    const vramRoom =
      freeVram === null ? 0 : vram === "auto" ? freeVram * AUTO_VRAM_SHARE - this.reserved.vram : Math.min(vram.bytes - used.vram, freeVram - this.reserved.vram);
    const room = {
      ram: Math.min(this.ramBudget - used.ram, this.probe.availableRam() - this.reserved.ram),
      vram: need.vram > 0 ? vramRoom : 0,
    };
    const idle: Candidate[] = [];
    const busy: string[] = [];
    for (const [other, model] of this.loaded) {
      if (other === id) continue;
      if (model.inFlight > 0 || this.holds.has(other) || this.loading.has(other)) busy.push(other);
      else idle.push({ id: other, use: model.memoryUsage(), lastUsed: this.lastUsed.get(other) ?? 0 });
    }
    const others = this.loaded.size - (this.loaded.has(id) ? 1 : 0) + [...this.loading.keys()].filter((k) => k !== id && !this.loaded.has(k)).length;
    const plan = planLoad({ need, room, count: others, idle, maxLoaded: this.policy.maxLoaded });
    if (!plan.ok && plan.reason === "memory") {
      const what = plan.resource === "ram" ? "RAM" : "GPU memory";
      const budget = plan.resource === "ram" ? this.ramBudget : vram === "auto" ? null : vram.bytes;
      throw new InfernoError(
        "INSUFFICIENT_MEMORY",
        `model '${id}' needs ${formatBytes(plan.needed)} of ${what} but only ${formatBytes(plan.free)} can be made free` +
          (budget !== null ? ` within the ${formatBytes(budget)} budget` : "") +
          (busy.length ? ` (models in use: ${busy.join(", ")})` : ""),
        { model: id, resource: plan.resource, needed_bytes: plan.needed, free_bytes: plan.free, budget_bytes: budget, models_in_use: busy },
      );
    }
    if (!plan.ok) {
      throw new InfernoError(
        "SERVICE_UNAVAILABLE",
        `${plan.loaded} models are loaded (the maximum is ${plan.max}) and all are in use; try again when one is idle`,
        { model: id, loaded_models: plan.loaded, max_loaded_models: plan.max, models_in_use: busy, retry_after: 1 },
      );
    }
    return plan.unload.map((victim) => {
      const model = this.loaded.get(victim)!;
      this.detach(victim);
      this.opts.log.info({ model: victim, for: id }, "unloading the least recently used idle model to make room");
      return [victim, model];
    });
  }

  async unload(id: string, reason: UnloadReason = "request"): Promise<boolean> {
    await this.loading.get(id)?.catch(() => undefined);
    const model = this.loaded.get(id);
    if (!model) return false;
    await this.disposeLoaded(id, model, reason);
    return true;
  }

  /** Never unloads a model that is serving requests. */
  private async disposeLoaded(id: string, model: LoadedModel, reason: UnloadReason): Promise<void> {
    if (model.inFlight > 0) {
      throw new InfernoError("MODEL_BUSY", `model '${id}' has ${model.inFlight} request(s) in flight`, { model: id, in_flight: model.inFlight });
    }
    this.detach(id);
    await this.disposeDetached(id, model, reason);
  }

  private async disposeDetached(id: string, model: LoadedModel, reason: UnloadReason): Promise<void> {
    const started = performance.now();
    try {
      await model.dispose();
    } catch (err) {
      this.opts.log.warn({ err, model: id, reason }, "model did not unload cleanly");
    }
    this.opts.log.info({ model: id, reason }, "model unloaded");
    this.emit({ kind: "unload", model: id, ms: performance.now() - started, reason });
  }

  /** Takes a model out of the loaded set (new requests load it again) and stops its keep-alive timer. */
  private detach(id: string): void {
    this.loaded.delete(id);
    this.lastUsed.delete(id);
    const timer = this.expiry.get(id)?.timer;
    if (timer) clearTimeout(timer);
    this.expiry.delete(id);
  }

  async close(): Promise<void> {
    for (const { timer } of this.expiry.values()) clearTimeout(timer);
    this.expiry.clear();
    await Promise.allSettled([...this.loading.values()]);
    const models = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.allSettled(models.map((m) => m.dispose()));
  }

  /**
   * Restarts this model's idle countdown with a request's own keep-alive (null: forever, 0: unload as
   * soon as it is idle). As in Ollama it lasts until the next request, which brings the default back.
   */
  setKeepAlive(id: string, ms: number | null): void {
    if (this.loaded.has(id)) this.arm(id, ms);
  }

  /** The server's idle time before an unused model is unloaded (config `keepAlive`; null: never). */
  get defaultKeepAliveMs(): number | null {
    return this.opts.keepAliveMs ?? null;
  }

  /** When the model will be unloaded if nothing uses it (null: never). */
  expiresAt(id: string): number | null {
    return this.expiry.get(id)?.at ?? null;
  }

  private touch(id: string, model: LoadedModel): LoadedModel {
    this.lastUsed.set(id, performance.now());
    this.arm(id, this.opts.keepAliveMs ?? null);
    return model;
  }

  private arm(id: string, ms: number | null): void {
    const prev = this.expiry.get(id);
    if (prev) clearTimeout(prev.timer);
    this.expiry.delete(id);
    if (ms === null) return;
    const timer = setTimeout(() => {
      this.expiry.delete(id);
      const model = this.loaded.get(id);
      if (!model) return;
      // Still serving: count the idle time again from now.
      if (model.inFlight > 0 || this.loading.has(id)) return this.arm(id, Math.max(ms, BUSY_RECHECK_MS));
      this.unload(id, "keep_alive").catch((err: unknown) => this.opts.log.warn({ err, model: id }, "keep-alive unload failed"));
    }, ms);
    timer.unref();
    this.expiry.set(id, { timer, at: Date.now() + ms });
  }

  private checkOptions(type: ModelType, options: Record<string, unknown>): void {
    const allowed = this.runtimeFor(type).optionKeys;
    const wrong = Object.keys(options).filter((k) => !allowed.includes(k));
    if (wrong.length) {
      throw new InfernoError("INVALID_REQUEST", `option(s) ${wrong.join(", ")} do not apply to ${type} models (allowed: ${allowed.join(", ")})`, {
        options: wrong,
        allowed,
      }, { param: "options" });
    }
  }

  private runtimeFor(type: ModelType): ModelRuntime {
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
