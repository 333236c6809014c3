// ModelInferRequest ↔ generation for GGUF models, the way Triton serves LLMs: the prompt in `text_input`
// (BYTES, one element), sampling settings as request parameters or as small input tensors of the same
// names, the text back in `text_output` (BYTES). Settings are checked by the native route's schema.
import type { GenerateRequest, GenerationResult } from "../../core/generation.js";
import { promptBody, toGenerateRequest, type GenerationLimits } from "../../dialects/native.js";
import { InfernoError } from "../../errors/catalogue.js";
import { parseBody } from "../../errors/error-handler.js";
import { decodeRawTensor, encodeRawStrings } from "../../runtimes/onnx/tensor-codec.js";
import { jsonElements } from "../../runtimes/onnx/tensor-elements.js";
import { elementTypeFromKserve } from "../../runtimes/onnx/tensor-types.js";
import type { InferParameter, InferParameter__Output } from "./generated/inference/InferParameter.js";
import type { ModelInferRequest__Output } from "./generated/inference/ModelInferRequest.js";
import type { ModelInferResponse } from "./generated/inference/ModelInferResponse.js";
import { decodeTyped, hasContents, shapeOf } from "./tensors.js";

/** Settings a request may give, as parameters or input tensors; `stream` only means something on ModelStreamInfer. */
const SETTINGS = new Set([
  "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty",
  "seed", "stop", "ignore_eos", "min_tokens", "stream",
]);
const TEXT_INPUT = "text_input";
export const TEXT_OUTPUT = "text_output";

/** A parameter's value, whichever member of the oneof carries it (64-bit integers as numbers when safe). */
export function parameterValue(p: InferParameter__Output): boolean | number | string | undefined {
  switch (p.parameter_choice) {
    case "bool_param":
      return p.bool_param;
    case "double_param":
      return p.double_param;
    case "string_param":
      return p.string_param;
    case "int64_param":
    case "uint64_param": {
      const n = Number(p[p.parameter_choice]);
      return Number.isSafeInteger(n) ? n : p[p.parameter_choice];
    }
    default:
      return undefined;
  }
}

export function toParameter(value: boolean | number | string): InferParameter {
  if (typeof value === "boolean") return { bool_param: value };
  if (typeof value === "string") return { string_param: value };
  return Number.isInteger(value) ? { int64_param: value } : { double_param: value };
}

/** Most elements read from text_input or a settings tensor (one prompt; a few stop strings). */
const SETTING_ELEMENTS = 64;

/** The elements of an input tensor (typed or raw) as JSON values, decoded by the tensor codec under `maxElements`. */
function elements(req: ModelInferRequest__Output, index: number, maxElements: number): unknown[] {
  const input = req.inputs[index]!;
  const type = elementTypeFromKserve(input.datatype);
  if (type === undefined || type === "float16") {
    throw new InfernoError("INVALID_REQUEST", `inputs.${input.name}.datatype: ${JSON.stringify(input.datatype)} is not taken here`, undefined, { param: `inputs.${input.name}` });
  }
  // Any shape: the settings' meaning is checked once their values are read.
  const spec = { name: input.name, type, shape: [] };
  const raw = req.raw_input_contents[index];
  const tensor = raw !== undefined
    ? decodeRawTensor(spec, { datatype: input.datatype, shape: shapeOf(input.shape) }, raw, { maxElements })
    : decodeTyped(spec, input, { maxElements });
  return jsonElements(type, tensor.data);
}

export interface TextInference {
  gen: GenerateRequest;
  /** Token by token (ModelStreamInfer with `stream: true`). */
  stream: boolean;
  /** The request sent its inputs raw: the text goes back in raw_output_contents. */
  raw: boolean;
}

/** A GGUF model's request: `text_input` and the settings, validated as the native route validates its body. */
export function textInference(model: string, req: ModelInferRequest__Output, limits: GenerationLimits): TextInference {
  if (req.raw_input_contents.length > 0 && req.raw_input_contents.length !== req.inputs.length) {
    throw new InfernoError("INVALID_REQUEST", `raw_input_contents has ${req.raw_input_contents.length} entries for ${req.inputs.length} inputs`, undefined, {
      param: "raw_input_contents",
    });
  }
  const body: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(req.parameters)) {
    if (SETTINGS.has(name)) body[name] = parameterValue(p);
  }
  // vLLM's Triton backend takes stop as a JSON list in a string parameter.
  if (typeof body.stop === "string" && body.stop.startsWith("[")) {
    try {
      body.stop = JSON.parse(body.stop) as unknown;
    } catch {
      throw new InfernoError("INVALID_REQUEST", "parameter stop: a value starting with '[' must be a JSON list of strings", undefined, { param: "parameters.stop" });
    }
  }
  let prompt: string | undefined;
  req.inputs.forEach((input, i) => {
    const where = `inputs.${input.name}`;
    const given = req.raw_input_contents[i] !== undefined || hasContents(input.contents);
    if (input.name === TEXT_INPUT) {
      if (input.datatype !== "BYTES") throw new InfernoError("INVALID_REQUEST", `${where}.datatype: expected "BYTES", got ${JSON.stringify(input.datatype)}`, undefined, { param: where });
      const values = elements(req, i, SETTING_ELEMENTS);
      if (values.length !== 1) throw new InfernoError("INVALID_REQUEST", `${where}: expected one element (shape [1]), got ${values.length}`, undefined, { param: where });
      prompt = values[0] as string;
    } else if (SETTINGS.has(input.name)) {
      if (!given) return;
      const values = elements(req, i, SETTING_ELEMENTS);
      body[input.name] = input.name === "stop" ? values : values.length === 1 ? values[0] : values;
    } else {
      throw new InfernoError("INVALID_REQUEST", `unknown input ${input.name}; a GGUF model takes ${TEXT_INPUT} and the settings ${[...SETTINGS].join(", ")}`, {
        unknown: input.name,
      }, { param: "inputs" });
    }
  });
  if (prompt === undefined) throw new InfernoError("INVALID_REQUEST", `a GGUF model needs the input ${TEXT_INPUT} (BYTES, shape [1])`, undefined, { param: "inputs" });
  const stream = body.stream === true;
  delete body.stream;
  const checked = parseBody(promptBody, { ...body, prompt });
  return { gen: toGenerateRequest(model, checked, limits), stream, raw: req.raw_input_contents.length > 0 };
}

/** A response carrying `text` in text_output, raw or typed like the request. */
export function textResponse(base: ModelInferResponse, value: string, raw: boolean): ModelInferResponse {
  const output = { name: TEXT_OUTPUT, datatype: "BYTES", shape: [1] };
  return raw
    ? { ...base, outputs: [output], raw_output_contents: [encodeRawStrings([value])] }
    : { ...base, outputs: [{ ...output, contents: { bytes_contents: [Buffer.from(value, "utf8")] } }] };
}

/** Token usage and why generation stopped, as response parameters. */
export const usageParameters = (r: GenerationResult): Record<string, InferParameter> => ({
  prompt_tokens: toParameter(r.promptTokens),
  completion_tokens: toParameter(r.completionTokens),
  finish_reason: toParameter(r.finishReason),
});
