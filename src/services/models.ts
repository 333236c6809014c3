// The models operation every service starts from: a model that can do what the request asks, loaded.
import { requireCapability, type Capability } from "../core/capabilities.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";

/**
 * The loaded model for an id (loading it on first use) when it can serve `capability`; else the one
 * coded refusal naming what the model can do, before anything is loaded.
 */
export async function capableModel(registry: ModelRegistry, id: string, capability: Capability): Promise<LoadedModel> {
  const loaded = registry.getLoaded(id);
  requireCapability(id, loaded ? { capabilities: loaded.capabilities, note: loaded.capabilityNote } : await registry.capabilities(await registry.get(id)), capability);
  return registry.acquire(id);
}
