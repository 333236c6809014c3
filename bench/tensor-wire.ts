// One float32 input the ways each transport's client sends it, and the output read back from each answer.
import { Buffer } from "node:buffer";
import type { Tensor } from "../src/client/index.js";
import { decodeFrame } from "../src/transports/ipc/frames.js";
import type { ModelInferRequest } from "../src/transports/grpc/generated/inference/ModelInferRequest.js";
import type { ModelInferResponse__Output } from "../src/transports/grpc/generated/inference/ModelInferResponse.js";
import { framed } from "./ipc-bench-client.js";
import type { HttpAnswer } from "./onnx-http.js";
import { prepareRequest, responseOutput, type BenchModel } from "./onnx-inputs.js";

/** The REST forms of a tensor request. */
export type HttpForm = "kserve-json" | "kserve-binary" | "octet";
/** The IPC sides: the shipped client on one connection or on one per client, and the minimal raw-frame client. */
export type IpcForm = "ipc" | "ipc-conns" | "ipc-raw";
/** Every side of the tensor comparison; the floors are bare servers with a canned answer (transport-floor.ts). */
export type TensorSideName = "raw" | "grpc" | "grpcio" | HttpForm | IpcForm | "grpc-floor" | "grpcio-floor" | "http-floor" | "ipc-floor" | "ipc-raw-floor";

export const SIDE_LABELS: Record<TensorSideName, string> = {
  raw: "raw session.run (bench process)",
  grpc: "gRPC ModelInfer, raw_input_contents",
  grpcio: "gRPC ModelInfer, grpcio client (Python, C core)",
  "kserve-binary": "REST /v2/.../infer, binary extension",
  "kserve-json": "REST /v2/.../infer, JSON data",
  octet: "REST /models/{id}/inference, octet-stream",
  ipc: "IPC infer, shipped client, 1 connection",
  "ipc-conns": "IPC infer, shipped client, 1 connection each",
  "ipc-raw": "IPC infer, raw-frame client, 1 connection",
  "grpc-floor": "floor: bare grpc-js server, canned answer",
  "grpcio-floor": "floor: bare grpc-js server, grpcio client",
  "http-floor": "floor: bare node:http server, canned answer",
  "ipc-floor": "floor: bare Unix-socket server, shipped client",
  "ipc-raw-floor": "floor: bare Unix-socket server, raw-frame client",
};

/** A REST request ready to send again and again, and how to read the model's output from its answer. */
export interface HttpWire {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  output(answer: HttpAnswer): ArrayLike<number>;
}

const bytesOf = (data: Float32Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** float32 values from little-endian bytes at any alignment. */
const floats = (bytes: Uint8Array) => new Float32Array(Uint8Array.from(bytes).buffer);

/** The output of a binary-extension answer: the JSON header (Inference-Header-Content-Length bytes), then each binary output in order. */
function binaryOutput(model: BenchModel, answer: HttpAnswer): Float32Array {
  const length = Number(answer.headers["inference-header-content-length"]);
  if (!Number.isInteger(length)) throw new Error(`binary answer without Inference-Header-Content-Length: ${answer.text.slice(0, 200)}`);
  const head = JSON.parse(answer.body.subarray(0, length).toString()) as { outputs: Array<{ name: string; parameters?: { binary_data_size?: number } }> };
  let at = length;
  for (const o of head.outputs) {
    const size = o.parameters?.binary_data_size ?? 0;
    if (o.name === model.output) return floats(answer.body.subarray(at, at + size));
    at += size;
  }
  throw new Error(`no binary output ${model.output} in ${JSON.stringify(head)}`);
}

/**
 * A REST request for `data`. The binary form is what Triton's HTTP client sends by default: the input's bytes
 * after the JSON header, and `binary_data_output` so that the outputs come back as bytes too.
 */
export function httpWire(model: BenchModel, id: string, data: Float32Array, form: HttpForm): HttpWire {
  const bytes = bytesOf(data);
  switch (form) {
    case "kserve-json": {
      const r = prepareRequest(model, id, data, "kserve");
      return { path: r.path, headers: { "content-type": "application/json" }, body: r.body, output: (a) => responseOutput(model, "kserve", a.text) };
    }
    case "kserve-binary": {
      const head = Buffer.from(JSON.stringify({
        inputs: [{ name: model.input, shape: model.dims, datatype: "FP32", parameters: { binary_data_size: bytes.length } }],
        parameters: { binary_data_output: true },
      }));
      return {
        path: `/v2/models/${id}/infer`,
        headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(head.length) },
        body: Buffer.concat([head, bytes]),
        output: (a) => binaryOutput(model, a),
      };
    }
    case "octet":
      return {
        path: `/models/${id}/inference?shape=${model.dims.join(",")}`,
        headers: { "content-type": "application/octet-stream" },
        body: Buffer.from(bytes),
        // The answer is the native route's JSON, as for a data_b64 request.
        output: (a) => responseOutput(model, "b64", a.text),
      };
  }
}

/** The gRPC request for `data`, as Triton's gRPC client sends tensors: the bytes in raw_input_contents. */
export function grpcTensorRequest(model: BenchModel, id: string, data: Float32Array): ModelInferRequest {
  return { model_name: id, inputs: [{ name: model.input, datatype: "FP32", shape: [...model.dims] }], raw_input_contents: [Buffer.from(bytesOf(data))] };
}

export function grpcOutput(model: BenchModel, res: ModelInferResponse__Output): Float32Array {
  const i = res.outputs.findIndex((o) => o.name === model.output);
  const bytes = res.raw_output_contents[i];
  if (i < 0 || !bytes) throw new Error(`no raw output ${model.output} in the ModelInfer response`);
  return floats(bytes);
}

/** The shipped IPC client's inputs for `data`: it sends a typed array as its bytes. */
export const ipcInputs = (model: BenchModel, data: Float32Array) => ({ [model.input]: { datatype: "FP32", shape: [...model.dims], data } });

/** The same infer request as one frame for the raw-frame client. */
export const ipcFrame = (model: BenchModel, id: string, data: Float32Array) =>
  framed({ op: "infer", model: id, inputs: { [model.input]: { datatype: "FP32", shape: [...model.dims], data: bytesOf(data) } } });

/** The output of an infer result (the bytes may be a view at any offset of the frame: floats() copies them). */
export function ipcOutput(model: BenchModel, result: { outputs: Record<string, Tensor> }): Float32Array {
  const t = result.outputs[model.output];
  if (!t || Array.isArray(t.data)) throw new Error(`no raw output ${model.output} in the IPC answer`);
  return floats(t.data);
}

/** The output in an answer frame's MessagePack bytes (the raw-frame client's answer). */
export const ipcFrameOutput = (model: BenchModel, frame: Buffer) => ipcOutput(model, (decodeFrame(frame) as { result: { outputs: Record<string, Tensor> } }).result);
