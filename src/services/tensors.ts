// Tensor inference, for every transport that runs ONNX models (native, KServe v2).
import { decodeNativeInputs, nativeOutputs, outputNames, type RawTensorBody, type TensorBody } from "../dialects/tensor.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { OnnxModel } from "../runtimes/onnx/onnx-model.js";
import type { DecodedTensor } from "../runtimes/onnx/tensor-codec.js";
import { capableModel } from "./models.js";

export interface TensorLimits {
  maxTensorElements: number;
}

/** The loaded tensor model for an id (loading it on first use), or the one coded refusal naming what the model can do. */
export async function tensorModel(registry: ModelRegistry, id: string): Promise<OnnxModel> {
  const loaded = await capableModel(registry, id, "tensor-inference");
  if (!(loaded instanceof OnnxModel)) {
    throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' is a ${loaded.type} model and does not take tensors`, { model: id });
  }
  return loaded;
}

/** Runs a decoded request on a tensor model and reports the run to the registry's observers (traces). */
export async function runTensors(registry: ModelRegistry, id: string, model: OnnxModel, inputs: Record<string, DecodedTensor>, fetches: string[], signal: AbortSignal) {
  const started = performance.now();
  const outputs = await model.infer(inputs, fetches, signal);
  registry.emit({ kind: "tensor-run", model: id, ms: performance.now() - started, batch: Object.values(inputs)[0]?.dims[0] ?? 1 });
  return outputs;
}

/** `POST /models/{id}/inference` on an ONNX model: `{inputs}` or one raw tensor → `{outputs: {name: {shape, dtype, data}}, latency_ms}`. */
export async function tensorInference(registry: ModelRegistry, limits: TensorLimits, id: string, body: TensorBody | RawTensorBody, signal: AbortSignal) {
  const started = performance.now();
  const model = await tensorModel(registry, id);
  const inputs = decodeNativeInputs(model, body, { maxElements: limits.maxTensorElements });
  const outputs = await runTensors(registry, id, model, inputs, outputNames(model, body.outputs, "outputs"), signal);
  return {
    model: id,
    outputs: nativeOutputs(outputs, body.layout ?? "nested"),
    latency_ms: Math.round((performance.now() - started) * 1000) / 1000,
  };
}
