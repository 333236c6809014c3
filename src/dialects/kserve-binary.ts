// The KServe v2 / Triton binary tensor data extension over REST: the body is `Inference-Header-Content-Length`
// bytes of JSON inference header, then the raw bytes of each input that declares `parameters.binary_data_size`,
// in input order. Outputs asked for with `binary_data` come back the same way. Only the framing is here; the
// raw tensor layout is the codec's (decodeRawTensor, encodeRawTensor).
import { Buffer } from "node:buffer";
import { InfernoError } from "../errors/catalogue.js";
import type { TensorMap } from "../runtimes/onnx/onnx-model.js";
import { encodeKserveOutput, encodeRawTensor } from "../runtimes/onnx/tensor-codec.js";
import { kserveOutputs, type KserveInferBody } from "./tensor.js";

/** The HTTP header that announces the extension and says how long the JSON part is. */
export const HEADER_LENGTH = "inference-header-content-length";

const invalid = (message: string, details?: Record<string, unknown>, param?: string) =>
  new InfernoError("INVALID_REQUEST", message, details, param ? { param } : undefined);

/** A binary request split in two: the JSON inference header's bytes and the tensor bytes after it (views, no copy). */
export function splitBinaryBody(body: Buffer, headerLength: unknown): { header: Buffer; tail: Buffer } {
  if (typeof headerLength !== "string" || !/^\d{1,15}$/.test(headerLength)) {
    throw invalid(`Inference-Header-Content-Length must be one decimal byte count, got ${JSON.stringify(headerLength)}`, { got: headerLength });
  }
  const length = Number(headerLength);
  if (length > body.length) {
    throw invalid(`Inference-Header-Content-Length is ${length} but the body has only ${body.length} bytes`, { expected: `at most ${body.length}`, got: length });
  }
  return { header: body.subarray(0, length), tail: body.subarray(length) };
}

/**
 * Each binary input's bytes by input name, cut from `tail` in input order. Every size must be a non-negative
 * integer, no input may overrun the tail and together they must use all of it. Without a tail (a plain JSON
 * request) no input may declare a binary size.
 */
export function binaryInputs(inputs: KserveInferBody["inputs"], tail: Buffer | undefined): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let at = 0;
  inputs.forEach((input, i) => {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) return;
    const param = `inputs[${i}].parameters.binary_data_size`;
    if (tail === undefined) {
      throw invalid(`${param}: binary data needs the Inference-Header-Content-Length header`, { input: input.name }, param);
    }
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw invalid(`${param}: expected a non-negative integer, got ${JSON.stringify(size)}`, { input: input.name, got: size }, param);
    }
    if (input.data !== undefined) throw invalid(`inputs[${i}] (${input.name}) has both data and binary_data_size`, { input: input.name }, param);
    if (at + size > tail.length) {
      throw invalid(`${param}: input ${input.name} declares ${size} bytes, only ${tail.length - at} follow`, { input: input.name, expected: size, got: tail.length - at }, param);
    }
    out.set(input.name, tail.subarray(at, at + size));
    at += size;
  });
  if (tail !== undefined && at !== tail.length) {
    throw invalid(`the inputs' binary_data_size add up to ${at} bytes, but ${tail.length} bytes follow the inference header`, { expected: at, got: tail.length });
  }
  return out;
}

const flag = (value: unknown, param: string): boolean | undefined => {
  if (value === undefined || typeof value === "boolean") return value;
  throw invalid(`${param}: expected true or false, got ${JSON.stringify(value)}`, { got: value }, param);
};

/** Outputs to return as raw bytes: each output's `binary_data`, else the request's `binary_data_output`. */
export function binaryOutputNames(body: KserveInferBody, fetches: readonly string[]): Set<string> {
  const byDefault = flag(body.parameters?.binary_data_output, "parameters.binary_data_output") ?? false;
  const asked = new Map<string, boolean | undefined>();
  body.outputs?.forEach((o, i) => asked.set(o.name, flag(o.parameters?.binary_data, `outputs[${i}].parameters.binary_data`)));
  return new Set(fetches.filter((name) => asked.get(name) ?? byDefault));
}

/** An infer answer: plain JSON when no output is binary, else the JSON header's length and the whole body. */
export type KserveAnswer = { json: Record<string, unknown> } | { headerLength: number; body: Buffer };

export function kserveAnswer(head: Record<string, unknown>, outputs: TensorMap, binary: ReadonlySet<string>): KserveAnswer {
  const entries = Object.entries(outputs);
  if (!entries.some(([name]) => binary.has(name))) return { json: { ...head, outputs: kserveOutputs(outputs) } };
  const raw: Uint8Array[] = [];
  const described = entries.map(([name, t]) => {
    if (!binary.has(name)) return encodeKserveOutput(name, t);
    const { datatype, shape, bytes } = encodeRawTensor(t);
    raw.push(bytes);
    return { name, datatype, shape, parameters: { binary_data_size: bytes.byteLength } };
  });
  const header = Buffer.from(JSON.stringify({ ...head, outputs: described }));
  return { headerLength: header.length, body: Buffer.concat([header, ...raw]) };
}
