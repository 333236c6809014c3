import type { GenerateRequest, GenerationStream } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { LlamaTextModel } from "../runtimes/llama/llama-text-model.js";

/** The loaded text model for an id (loading it on first use), or a coded error for a model that is not one. */
export async function textModel(registry: ModelRegistry, id: string): Promise<LlamaTextModel> {
  const loaded = await registry.acquire(id);
  if (!(loaded instanceof LlamaTextModel)) {
    throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' is a ${loaded.type} model and does not generate text`, {
      model: id,
      capabilities: loaded.capabilities,
    });
  }
  return loaded;
}

/** The one generation path every dialect uses: resolve the model, wait for a sequence, stream tokens. */
export async function startGeneration(registry: ModelRegistry, req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
  const model = await textModel(registry, req.model);
  return model.start(req, signal);
}
