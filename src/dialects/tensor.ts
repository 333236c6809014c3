import { z } from "zod";
import { InfernoError } from "../errors/catalogue.js";
import type { OnnxModel, TensorMap } from "../runtimes/onnx/onnx-model.js";
import {
  decodeBinaryTensor, decodeJsonTensor, decodeKserveTensor, decodeRawTensor, encodeKserveOutput, encodeTensor, isElementType, kserveDatatype, MAX_TENSOR_RANK,
  type DecodedTensor, type DecodeLimits, type TensorSpec,
} from "../runtimes/onnx/tensor-codec.js";
import { alignOwned } from "../runtimes/onnx/session-protocol.js";
import { elementSize } from "../runtimes/onnx/tensor-types.js";

const binaryInput = z.object({ data_b64: z.string(), shape: z.array(z.number().int().min(0)).max(8), dtype: z.string().max(16) }).strict();

/** `POST /models/{id}/inference` for tensor models: inputs by name, as nested JSON or `{data_b64, shape, dtype}`. */
export const tensorBody = z
  .object({
    inputs: z.record(z.string().max(256), z.unknown()),
    outputs: z.array(z.string().max(256)).max(256).optional(),
    /** "nested" (default) returns nested arrays; "flat" returns row-major element lists. */
    layout: z.enum(["nested", "flat"]).optional(),
  })
  .strict();
export type TensorBody = z.infer<typeof tensorBody>;

/** `POST /models/{id}/inference` with an application/octet-stream body: one raw tensor for a single-input model. */
export interface RawTensorBody {
  raw: { bytes: Uint8Array; shape: number[]; dtype: string | undefined };
  outputs?: undefined;
  layout?: undefined;
}

/** The query of a raw body: `shape=1,1,28,28` and an optional `dtype` ("float32" or "FP32"; the input's own by default). */
export const rawTensorQuery = z.object({ shape: z.string().max(256).optional(), dtype: z.string().max(16).optional() });

/** The dims of a `shape` query parameter: decimal integers separated by commas (empty for a scalar). */
export function parseShapeParam(text: string | undefined): number[] {
  if (text === undefined) {
    throw new InfernoError("INVALID_REQUEST", "an application/octet-stream body needs its shape as a query parameter, e.g. ?shape=1,1,28,28", {}, { param: "shape" });
  }
  const dims = text === "" ? [] : text.split(",");
  const bad = dims.findIndex((d) => !/^\d{1,15}$/.test(d));
  if (bad >= 0 || dims.length > MAX_TENSOR_RANK) {
    throw new InfernoError("INVALID_REQUEST", `shape: expected up to ${MAX_TENSOR_RANK} non-negative integers separated by commas, got ${JSON.stringify(text)}`, {
      got: text,
    }, { param: "shape" });
  }
  return dims.map(Number);
}

const names = (specs: TensorSpec[]) => specs.map((s) => s.name);

/** Every model input present once and nothing else; `param` names the field in the client's terms. */
export function matchInputs<T>(model: OnnxModel, given: Map<string, T>, param: string): Array<[TensorSpec, T]> {
  const unknown = [...given.keys()].filter((n) => !model.inputs.some((s) => s.name === n));
  if (unknown.length) {
    throw new InfernoError("INVALID_REQUEST", `unknown input(s) ${unknown.join(", ")}; the model takes ${names(model.inputs).join(", ")}`, {
      unknown, expected: names(model.inputs),
    }, { param });
  }
  const missing = model.inputs.filter((s) => !given.has(s.name)).map((s) => s.name);
  if (missing.length) {
    throw new InfernoError("INVALID_REQUEST", `missing input(s) ${missing.join(", ")}`, { missing, expected: names(model.inputs) }, { param });
  }
  return model.inputs.map((spec) => [spec, given.get(spec.name)!]);
}

/** Requested outputs (all by default), checked against the model's. */
export function outputNames(model: OnnxModel, requested: string[] | undefined, param: string): string[] {
  if (!requested || requested.length === 0) return names(model.outputs);
  const unknown = requested.filter((n) => !model.outputs.some((o) => o.name === n));
  if (unknown.length) {
    throw new InfernoError("INVALID_REQUEST", `unknown output(s) ${unknown.join(", ")}; the model has ${names(model.outputs).join(", ")}`, {
      unknown, expected: names(model.outputs),
    }, { param });
  }
  return [...new Set(requested)];
}

/** Decodes the native body's inputs: nested JSON arrays, or the binary form; or the one input of a raw body. */
export function decodeNativeInputs(model: OnnxModel, body: TensorBody | RawTensorBody, limits: DecodeLimits): Record<string, DecodedTensor> {
  if ("raw" in body) return decodeRawBody(model, body.raw, limits);
  const out: Record<string, DecodedTensor> = {};
  for (const [spec, value] of matchInputs(model, new Map(Object.entries(body.inputs)), "inputs")) {
    const binary = value !== null && typeof value === "object" && !Array.isArray(value) ? binaryInput.safeParse(value) : undefined;
    if (binary && !binary.success) {
      throw new InfernoError("INVALID_REQUEST", `input ${spec.name}: an object input must be {data_b64, shape, dtype}`, { input: spec.name }, {
        param: `inputs.${spec.name}`,
      });
    }
    out[spec.name] = binary?.success ? decodeBinaryTensor(spec, binary.data, limits) : decodeJsonTensor(spec, value, limits);
  }
  return out;
}

function decodeRawBody(model: OnnxModel, raw: RawTensorBody["raw"], limits: DecodeLimits): Record<string, DecodedTensor> {
  const [spec, ...more] = model.inputs;
  if (!spec || more.length > 0) {
    throw new InfernoError("INVALID_REQUEST", `a raw application/octet-stream body is one tensor, but the model takes ${model.inputs.length} inputs (${names(model.inputs).join(", ")}); send JSON {inputs}`, {
      expected: names(model.inputs),
    });
  }
  const datatype = raw.dtype === undefined ? kserveDatatype(spec.type) : isElementType(raw.dtype) ? kserveDatatype(raw.dtype) : raw.dtype;
  return { [spec.name]: decodeRawTensor(spec, { datatype, shape: raw.shape }, raw.bytes, limits) };
}

export const nativeOutputs = (outputs: TensorMap, layout: "nested" | "flat") =>
  Object.fromEntries(Object.entries(outputs).map(([name, t]) => [name, encodeTensor(t, layout)]));

/** Open Inference Protocol (KServe v2) request. */
export const kserveInferBody = z.object({
  id: z.string().max(256).optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z
    .array(
      z.object({
        name: z.string().max(256),
        shape: z.array(z.number().int().min(0)).max(8),
        datatype: z.string().max(16),
        data: z.unknown().optional(),
        parameters: z.record(z.string(), z.unknown()).optional(),
      }),
    )
    .min(1)
    .max(256),
  outputs: z.array(z.object({ name: z.string().max(256), parameters: z.record(z.string(), z.unknown()).optional() })).max(256).optional(),
});
export type KserveInferBody = z.infer<typeof kserveInferBody>;

/** Decodes a KServe v2 request's inputs; those in `raw` (by name: binary extension, gRPC raw contents) from their bytes. */
export function decodeKserveInputs(
  model: OnnxModel, body: KserveInferBody, limits: DecodeLimits, raw: ReadonlyMap<string, Uint8Array> = new Map(),
): Record<string, DecodedTensor> {
  const given = new Map<string, KserveInferBody["inputs"][number]>();
  for (const input of body.inputs) {
    if (given.has(input.name)) throw new InfernoError("INVALID_REQUEST", `input ${input.name} given twice`, { input: input.name }, { param: "inputs" });
    given.set(input.name, input);
  }
  const out: Record<string, DecodedTensor> = {};
  const placed = new Map(raw); // where each raw tensor is now (alignOwned may move one within the request's buffer)
  for (const [spec, input] of matchInputs(model, given, "inputs")) {
    let bytes = placed.get(spec.name);
    if (bytes !== undefined) placed.set(spec.name, (bytes = alignOwned(bytes, elementSize(spec.type) ?? 1, placed.values())));
    out[spec.name] = bytes !== undefined ? decodeRawTensor(spec, input, bytes, limits) : decodeKserveTensor(spec, { datatype: input.datatype, shape: input.shape, data: input.data }, limits);
  }
  return out;
}

export const kserveOutputs = (outputs: TensorMap) => Object.entries(outputs).map(([name, t]) => encodeKserveOutput(name, t));
