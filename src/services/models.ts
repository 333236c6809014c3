// The models operation every service starts from: a model that can do what the request asks, loaded.
import { requireCapability, type Capability } from "../core/capabilities.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { InfernoError } from "../errors/catalogue.js";
import { GgufTextModel, type TextModel } from "../runtimes/llama/gguf-text-model.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";
import { OnnxModel } from "../runtimes/onnx/onnx-model.js";
import type { OnnxTextEncoder } from "../runtimes/onnx/onnx-text.js";

/**
 * The loaded model for an id (loading it on first use) when it can serve `capability`; else the one
 * coded refusal naming what the model can do, before anything is loaded.
 */
export async function capableModel(registry: ModelRegistry, id: string, capability: Capability): Promise<LoadedModel> {
  const loaded = registry.getLoaded(id);
  requireCapability(id, loaded ? { capabilities: loaded.capabilities, note: loaded.capabilityNote } : await registry.capabilities(await registry.get(id)), capability);
  return registry.acquire(id);
}

/** The side of a model that embeds or reranks: a GGUF model itself, or an ONNX model's text encoder. */
export async function textEncoder(registry: ModelRegistry, id: string, capability: "embeddings" | "reranking"): Promise<TextModel | OnnxTextEncoder> {
  const model = await capableModel(registry, id, capability);
  if (model instanceof GgufTextModel) return model;
  if (model instanceof OnnxModel && model.text) return model.text;
  throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' has no text encoder`, { model: id, capabilities: model.capabilities });
}
