import { Buffer } from "node:buffer";

/** A model the bench drives: its file, its one float32 input and one output, and whether Inferno can batch it. */
export interface BenchModel {
  /** Short name in the report. */
  name: string;
  file: string;
  input: string;
  /** Input dims for one request (batch 1). */
  dims: readonly number[];
  output: string;
  outputDims: readonly number[];
  /** Axis 0 is dynamic on every input and output, so Inferno's dynamic batcher applies. */
  batchable: boolean;
  /** Values the generated input spans: raw pixels for mnist, normalized channels for mobilenet. */
  range: readonly [number, number];
}

export const MNIST: BenchModel = {
  name: "mnist-8",
  file: "mnist-8.onnx",
  input: "Input3",
  dims: [1, 1, 28, 28],
  output: "Plus214_Output_0",
  outputDims: [1, 10],
  batchable: false,
  range: [0, 1],
};

export const MOBILENET: BenchModel = {
  name: "mobilenetv2-12-int8",
  file: "mobilenetv2-12-int8.onnx",
  input: "input",
  dims: [1, 3, 224, 224],
  output: "output",
  outputDims: [1, 1000],
  batchable: true,
  range: [-2, 2.5],
};

export const elementsOf = (dims: readonly number[]) => dims.reduce((n, d) => n * d, 1);

/** `rows` inputs' worth of deterministic pseudo-random float32 data (an LCG, so every run sends the same bytes). */
export function sampleInput(model: BenchModel, rows = 1, seed = 1): Float32Array {
  const out = new Float32Array(elementsOf(model.dims) * rows);
  const [lo, hi] = model.range;
  let state = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * state) / 2 ** 32;
  }
  return out;
}

/** How a request carries its tensor. */
export type InputForm = "json" | "b64" | "kserve";

export const FORM_LABELS: Record<InputForm, string> = {
  json: "POST /models/{id}/inference, nested JSON",
  b64: "POST /models/{id}/inference, data_b64",
  kserve: "POST /v2/models/{id}/infer, flat data",
};

/** A request ready to send again and again: path and the encoded body. */
export interface PreparedRequest {
  form: InputForm;
  path: string;
  body: Buffer;
}

/** Row-major values grouped into nested arrays of `dims`. */
function nested(values: ArrayLike<number>, dims: readonly number[], offset = 0): unknown {
  const [first, ...rest] = dims;
  if (first === undefined) return values[offset];
  const stride = elementsOf(rest);
  const out = new Array<unknown>(first);
  for (let i = 0; i < first; i++) out[i] = rest.length === 0 ? values[offset + i] : nested(values, rest, offset + i * stride);
  return out;
}

/** The request body of one form for `data` (shaped as the model's input for one request). */
export function prepareRequest(model: BenchModel, id: string, data: Float32Array, form: InputForm): PreparedRequest {
  const dims = [...model.dims];
  let body: unknown;
  if (form === "json") {
    body = { inputs: { [model.input]: nested(data, dims) } };
  } else if (form === "b64") {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    body = { inputs: { [model.input]: { data_b64: bytes.toString("base64"), shape: dims, dtype: "float32" } } };
  } else {
    body = { inputs: [{ name: model.input, shape: dims, datatype: "FP32", data: Array.from(data) }] };
  }
  const path = form === "kserve" ? `/v2/models/${id}/infer` : `/models/${id}/inference`;
  return { form, path, body: Buffer.from(JSON.stringify(body)) };
}

/** The output tensor's values from an Inferno response of any form, flattened row-major. */
export function responseOutput(model: BenchModel, form: InputForm, text: string): number[] {
  const body = JSON.parse(text) as {
    outputs: Record<string, { data: unknown }> | Array<{ name: string; data: unknown }>;
  };
  const out = Array.isArray(body.outputs) ? body.outputs.find((o) => o.name === model.output) : body.outputs[model.output];
  if (!out) throw new Error(`${form}: no output ${model.output} in ${text.slice(0, 200)}`);
  return (out.data as unknown[]).flat(Infinity) as number[];
}
