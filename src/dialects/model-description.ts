// A model as the native API and the IPC `models` op describe it.
import type { ModelEntry, ModelFacts, ModelRegistry } from "../registry/model-registry.js";
import type { LoadedModel } from "../runtimes/loaded-model.js";
import { OnnxModel } from "../runtimes/onnx/onnx-model.js";

/** A tensor model's inputs and outputs (dynamic dims by their symbolic name, or -1), loaded or read from the file. */
function signatureOf(loaded: LoadedModel | undefined, facts: ModelFacts | undefined) {
  if (loaded instanceof OnnxModel) return { inputs: loaded.inputs, outputs: loaded.outputs };
  return { inputs: facts?.inputs ?? null, outputs: facts?.outputs ?? null };
}

/** What a loaded model holds: the API reference's total, and its split between RAM and GPU memory. */
export function memoryFields(model: LoadedModel) {
  const { ram, vram } = model.memoryUsage();
  return { memory_usage_bytes: ram + vram, memory: { ram_bytes: ram, vram_bytes: vram } };
}

/** A model as `GET /models` shows it (fields of the API reference plus a few of Inferno's). */
export async function describeModel(registry: ModelRegistry, entry: ModelEntry, detailed = false) {
  const loaded = registry.getLoaded(entry.id);
  const facts = await registry.facts(entry).catch(() => undefined);
  const trained = typeof facts?.contextLength === "number" ? facts.contextLength : null;
  return {
    id: entry.id,
    name: entry.name,
    type: entry.type,
    size_bytes: entry.sizeBytes,
    loaded: loaded !== undefined,
    context_size: loaded?.contextSize ?? trained,
    capabilities: (await registry.capabilities(entry).catch(() => undefined))?.capabilities ?? [],
    source: entry.source,
    /** A registration whose file was renamed or deleted: listed, not served (MODEL_FILE_MISSING). */
    missing: entry.missing === true,
    created: entry.created,
    ...(loaded ? { ...memoryFields(loaded), options: loaded.options } : {}),
    ...(entry.type === "onnx" ? signatureOf(loaded, facts) : {}),
    ...(detailed ? { details: facts ?? null, registration_options: entry.options } : {}),
  };
}
