// The transport bench's gRPC client: grpc-js stubs of GRPCInferenceService, a unary ModelInfer and a timed
// ModelStreamInfer generation. The proto is loaded here, not through the server's grpc-plugin.ts, whose imports
// pull the whole server (node-llama-cpp included) into the process that also runs raw session.run.
import path from "node:path";
import { credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { ProtoGrpcType } from "../src/transports/grpc/generated/inference.js";
import type { GRPCInferenceServiceClient } from "../src/transports/grpc/generated/inference/GRPCInferenceService.js";
import type { ModelInferRequest } from "../src/transports/grpc/generated/inference/ModelInferRequest.js";
import type { ModelInferResponse__Output } from "../src/transports/grpc/generated/inference/ModelInferResponse.js";
import type { ModelStreamInferResponse__Output } from "../src/transports/grpc/generated/inference/ModelStreamInferResponse.js";
import { repoRoot } from "./args.js";
import type { StreamRequest } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";

export type GrpcClient = GRPCInferenceServiceClient;

/** The loader options the generated types were made with (package.json "gen:grpc", the server's PROTO_OPTIONS). */
const PROTO_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

let proto: ProtoGrpcType | undefined;

/** The service's stubs and definition, loaded once. */
export function inferenceProto(): ProtoGrpcType {
  proto ??= loadPackageDefinition(loadSync(path.join(repoRoot, "proto/inference.proto"), PROTO_OPTIONS)) as unknown as ProtoGrpcType;
  return proto;
}

/**
 * `n` client objects for `address`. grpc-js shares one connection between channels of the same target and
 * options, so each channel past the first gets a local subchannel pool: n channels, n HTTP/2 connections.
 */
export function grpcChannels(address: string, n: number): GrpcClient[] {
  const Client = inferenceProto().inference.GRPCInferenceService;
  return Array.from({ length: n }, (_, i) => new Client(address, credentials.createInsecure(), i === 0 ? {} : { "grpc.use_local_subchannel_pool": 1 }));
}

/** Waits until every client's channel is connected, so that no timed call pays for the connection. */
export function connect(clients: GrpcClient[]): Promise<void[]> {
  const deadline = Date.now() + 10_000;
  return Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(deadline, (err) => (err ? reject(err) : resolve())))));
}

export function modelInfer(client: GrpcClient, req: ModelInferRequest): Promise<ModelInferResponse__Output> {
  return new Promise((resolve, reject) => client.ModelInfer(req, (err, res) => (err || !res ? reject(err ?? new Error("no response")) : resolve(res))));
}

/** A BYTES tensor's raw form: each element a 4-byte little-endian length, then its UTF-8 bytes. */
function rawString(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32LE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** The gRPC form of an SSE bench request, as Triton's client sends it: text_input raw, settings as parameters, stream on. */
export function streamInferRequest(req: StreamRequest): ModelInferRequest {
  return {
    model_name: req.model,
    inputs: [{ name: "text_input", datatype: "BYTES", shape: [1] }],
    raw_input_contents: [rawString(req.prompt)],
    parameters: {
      stream: { bool_param: true },
      max_tokens: { int64_param: req.maxTokens },
      temperature: { double_param: 0 },
      ...(req.ignoreEos ? { ignore_eos: { bool_param: true } } : {}),
    },
  };
}

/**
 * One generation on its own ModelStreamInfer call, timed as sse-client.ts times an SSE stream: the first and last
 * token responses as they arrive, the token count from the final response's `completion_tokens`.
 */
export function streamGeneration(client: GrpcClient, req: ModelInferRequest): Promise<StreamTiming> {
  const startMs = performance.now();
  return new Promise((resolve, reject) => {
    const call = client.ModelStreamInfer();
    let firstTokenMs = 0;
    let lastTokenMs = 0;
    let final: ModelInferResponse__Output | undefined;
    let failed: Error | undefined;
    call.on("data", (msg: ModelStreamInferResponse__Output) => {
      const now = performance.now();
      if (msg.error_message !== "") failed ??= new Error(`ModelStreamInfer: ${msg.error_message}`);
      else if (msg.infer_response && msg.infer_response.outputs.length > 0) {
        if (firstTokenMs === 0) firstTokenMs = now;
        lastTokenMs = now;
      } else final = msg.infer_response ?? undefined;
    });
    call.on("error", reject);
    call.on("end", () => {
      if (failed) return reject(failed);
      const tokens = Number(final?.parameters.completion_tokens?.int64_param);
      if (!final || !Number.isFinite(tokens)) return reject(new Error("ModelStreamInfer ended without its final response"));
      resolve({ tokens, startMs, firstTokenMs, lastTokenMs, endMs: performance.now(), finishReason: final.parameters.finish_reason?.string_param ?? "" });
    });
    call.write(req);
    call.end();
  });
}
