// ModelInferRequest ↔ tensors for ONNX models: typed `contents` or `raw_input_contents` in; outputs back
// in the form the request used (raw when its inputs came raw, as Triton's clients send and read them;
// typed `contents` otherwise, except FP16, which only travels raw).
import { matchInputs, outputNames } from "../../dialects/tensor.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { OnnxModel, TensorMap } from "../../runtimes/onnx/onnx-model.js";
import {
  decodeKserveTensor, decodeRawTensor, encodeRawTensor, type DecodedTensor, type DecodeLimits, type TensorLike, type TensorSpec,
} from "../../runtimes/onnx/tensor-codec.js";
import { checkCount, invalidInput, parseShape } from "../../runtimes/onnx/tensor-shape.js";
import { alignOwned } from "../../runtimes/onnx/session-protocol.js";
import { elementSize, elementTypeFromKserve, kserveDatatype } from "../../runtimes/onnx/tensor-types.js";
import type { InferTensorContents, InferTensorContents__Output } from "./generated/inference/InferTensorContents.js";
import type { ModelInferRequest__Output } from "./generated/inference/ModelInferRequest.js";
import type { ModelInferResponse } from "./generated/inference/ModelInferResponse.js";

type InputTensor = ModelInferRequest__Output["inputs"][number];
type OutputTensor = NonNullable<ModelInferResponse["outputs"]>[number];

/** The contents field each datatype travels in (FP16 has none: raw only). */
const CONTENTS_FIELD: Record<string, keyof InferTensorContents__Output> = {
  BOOL: "bool_contents",
  INT8: "int_contents",
  INT16: "int_contents",
  INT32: "int_contents",
  INT64: "int64_contents",
  UINT8: "uint_contents",
  UINT16: "uint_contents",
  UINT32: "uint_contents",
  UINT64: "uint64_contents",
  FP32: "fp32_contents",
  FP64: "fp64_contents",
  BYTES: "bytes_contents",
};

/** Shapes arrive as decimal strings (int64); anything not a safe integer is refused by the shape check. */
export const shapeOf = (shape: readonly string[]): number[] => shape.map((d) => (/^-?\d{1,16}$/.test(d) ? Number(d) : NaN));

/** Whether a tensor's contents carry anything (a client may send an empty message for "none"). */
export const hasContents = (c: InferTensorContents__Output | null): boolean =>
  c !== null && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One input from typed contents, checked against the model's spec as the REST form is. */
export function decodeTyped(spec: TensorSpec, input: InputTensor, limits: DecodeLimits): DecodedTensor {
  const field = CONTENTS_FIELD[input.datatype];
  if (field === undefined) {
    const expected = kserveDatatype(spec.type);
    if (input.datatype === "FP16" && spec.type === "float16") {
      throw invalidInput(spec, ": FP16 has no typed contents field; send it in raw_input_contents", { expected: "raw_input_contents", got: "contents" });
    }
    throw invalidInput(spec, `.datatype: expected "${expected}", got ${JSON.stringify(input.datatype)}`, { expected, got: input.datatype });
  }
  const values = input.contents?.[field] ?? [];
  const header = { shape: shapeOf(input.shape), datatype: input.datatype };
  const floats = field === "fp32_contents" ? Float32Array : field === "fp64_contents" ? Float64Array : undefined;
  if (floats && elementTypeFromKserve(input.datatype) === spec.type) {
    // Protobuf floats are already the element type (NaN and infinities included): no per-element checks to make.
    const dims = parseShape(spec, header.shape);
    const count = checkCount(spec, dims, limits);
    if (values.length !== count) {
      throw invalidInput(spec, `.contents.${field}: expected ${count} elements for shape [${dims.join(", ")}], got ${values.length}`, { expected: count, got: values.length });
    }
    return { type: spec.type, dims, data: floats.from(values as number[]) };
  }
  const data = field === "bytes_contents" ? (values as Buffer[]).map((b, i) => bytesText(spec, b, i)) : values;
  return decodeKserveTensor(spec, { ...header, data }, limits);
}

function bytesText(spec: TensorSpec, bytes: Buffer, index: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalidInput(spec, `.contents.bytes_contents[${index}]: not valid UTF-8`, { expected: "UTF-8", got: "invalid bytes" });
  }
}

/** The request's inputs, matched to the model's by name, in raw or typed form (never both). */
export function decodeInputs(model: OnnxModel, req: ModelInferRequest__Output, limits: DecodeLimits): Record<string, DecodedTensor> {
  const given = new Map<string, number>();
  req.inputs.forEach((input, i) => {
    if (given.has(input.name)) throw new InfernoError("INVALID_REQUEST", `input ${input.name} given twice`, { input: input.name }, { param: "inputs" });
    given.set(input.name, i);
  });
  const raw = req.raw_input_contents;
  if (raw.length > 0) {
    if (raw.length !== req.inputs.length) {
      throw new InfernoError("INVALID_REQUEST", `raw_input_contents has ${raw.length} entries for ${req.inputs.length} inputs (one per input, in order)`, {
        expected: req.inputs.length, got: raw.length,
      }, { param: "raw_input_contents" });
    }
    const typed = req.inputs.find((t) => hasContents(t.contents));
    if (typed) {
      throw new InfernoError("INVALID_REQUEST", `input ${typed.name} has contents while raw_input_contents is used: send every input one way`, { input: typed.name }, { param: "inputs" });
    }
  }
  const out: Record<string, DecodedTensor> = {};
  for (const [spec, i] of matchInputs(model, given, "inputs")) {
    const input = req.inputs[i]!;
    out[spec.name] = raw.length > 0
      ? decodeRawTensor(spec, { datatype: input.datatype, shape: shapeOf(input.shape) }, (raw[i] = alignOwned(raw[i]!, elementSize(spec.type) ?? 1, raw) as Buffer), limits)
      : decodeTyped(spec, input, limits);
  }
  return out;
}

/** Requested output names (all of the model's when none). */
export const requestedOutputs = (model: OnnxModel, req: ModelInferRequest__Output) =>
  outputNames(model, req.outputs.map((o) => o.name), "outputs");

/** Typed contents of one tensor, in the field of its datatype. */
function typedContents(tensor: TensorLike, datatype: string): InferTensorContents {
  const field = CONTENTS_FIELD[datatype]!;
  const data = tensor.data as ArrayLike<unknown>;
  switch (field) {
    case "int64_contents":
    case "uint64_contents":
      return { [field]: Array.from(data as ArrayLike<bigint>, (v) => v.toString()) };
    case "bool_contents":
      return { bool_contents: Array.from(data, (v) => v !== 0 && v !== false) };
    case "bytes_contents":
      return { bytes_contents: Array.from(data as ArrayLike<string>, (s) => Buffer.from(s, "utf8")) };
    default:
      // proto-loader's serializer takes arrays only (protobufjs fromObject), not typed arrays.
      return { [field]: Array.from(data as ArrayLike<number>) };
  }
}

/** Outputs as a response carries them: raw when asked (or when one is FP16), else typed contents. */
export function encodeOutputs(outputs: TensorMap, raw: boolean): Pick<ModelInferResponse, "outputs" | "raw_output_contents"> {
  const entries = Object.entries(outputs);
  const encoded = entries.map(([name, t]) => ({ name, ...encodeRawTensor(t) }));
  if (raw || encoded.some((o) => o.datatype === "FP16")) {
    return {
      outputs: encoded.map(({ name, datatype, shape }): OutputTensor => ({ name, datatype, shape })),
      raw_output_contents: encoded.map((o) => o.bytes),
    };
  }
  return {
    outputs: encoded.map(({ name, datatype, shape }, i): OutputTensor => ({ name, datatype, shape, contents: typedContents(entries[i]![1], datatype) })),
  };
}
