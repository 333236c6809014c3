// The loader: which models are in memory. Single-flight loads, memory admission (budgets, least recently
// used idle models unloaded to make room), holds for requests about to start, keep-alive expiry.
import { InfernoError } from "../errors/catalogue.js";
import type { Logger } from "../core/logger.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";
import { AUTO_RAM_SHARE, AUTO_VRAM_SHARE, formatBytes, NO_MEMORY, planLoad, systemProbe, type Candidate, type MemoryProbe, type MemoryUse } from "./memory-budget.js";
import type { ModelCatalogue } from "./model-catalogue.js";
import type { MemoryPolicy, RegistryEvent, UnloadReason } from "./model-registry.js";

export interface LoaderOptions {
  log: Logger;
  /** Idle time after which a loaded model is unloaded (ms); null keeps models loaded. */
  keepAliveMs?: number | null | undefined;
  memory?: MemoryPolicy | undefined;
  /** Tells the registry's observers of loads and unloads. */
  emit: (event: RegistryEvent) => void;
}

/** Re-check period for a model whose keep-alive ran out while it was still serving. */
const BUSY_RECHECK_MS = 1000;

export class ModelLoader {
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private readonly expiry = new Map<string, { timer: NodeJS.Timeout; at: number }>();
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

  constructor(
    private readonly catalogue: ModelCatalogue,
    private readonly opts: LoaderOptions,
  ) {
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
    const entry = await this.catalogue.servable(id);
    this.catalogue.checkOptions(entry.type, options);
    // Before a reload disposes the loaded model: a file gone since the last scan is noticed here.
    await this.catalogue.ensureFile(entry);
    const current = this.loaded.get(id);
    if (current) {
      if (Object.entries(options).every(([k, v]) => current.options[k] === v)) return this.touch(id, current);
      await this.disposeLoaded(id, current, "reload");
    }
    const runtime = this.catalogue.runtimeFor(entry.type);
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
    this.opts.emit({ kind: "load", model: id, ms: model.loadTimeMs });
    return this.touch(id, model);
  }

  /**
   * The loaded model for a request, loading it on first use. The model is held until the caller's next
   * turn of the event loop, so that a load making room cannot unload it before the request starts on it.
   * A model no longer in the catalogue, or whose registered file is missing, is refused even while loaded.
   */
  async acquire(id: string): Promise<LoadedModel> {
    await this.catalogue.servable(id);
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
    this.opts.emit({ kind: "unload", model: id, ms: performance.now() - started, reason });
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
   * Unloads a model that can no longer be served (catalogue.servable refuses it) as soon as it is idle:
   * now, or once its requests in flight are done.
   */
  retire(id: string): void {
    if (this.loaded.has(id)) this.arm(id, 0, "removed");
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

  private arm(id: string, ms: number | null, reason: UnloadReason = "keep_alive"): void {
    const prev = this.expiry.get(id);
    if (prev) clearTimeout(prev.timer);
    this.expiry.delete(id);
    if (ms === null) return;
    const timer = setTimeout(() => {
      this.expiry.delete(id);
      const model = this.loaded.get(id);
      if (!model) return;
      // Still serving: count the idle time again from now.
      if (model.inFlight > 0 || this.loading.has(id)) return this.arm(id, Math.max(ms, BUSY_RECHECK_MS), reason);
      this.unload(id, reason).catch((err: unknown) => this.opts.log.warn({ err, model: id, reason }, "idle unload failed"));
    }, ms);
    timer.unref();
    this.expiry.set(id, { timer, at: Date.now() + ms });
  }
}
