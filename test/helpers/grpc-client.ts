// A real gRPC client of Inferno's GRPCInferenceService, typed from the generated proto types, with
// promise wrappers for the unary calls.
import { credentials, loadPackageDefinition, Metadata, type CallOptions, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import type { ProtoGrpcType } from "../../src/transports/grpc/generated/inference.js";
import type { GRPCInferenceServiceClient } from "../../src/transports/grpc/generated/inference/GRPCInferenceService.js";
import { loadInferenceProto } from "../../src/transports/grpc/grpc-plugin.js";

export type InferenceClient = GRPCInferenceServiceClient;

export function inferenceClient(address: string, creds: ChannelCredentials = credentials.createInsecure(), options: Record<string, unknown> = {}): InferenceClient {
  const proto = loadPackageDefinition(loadInferenceProto()) as unknown as ProtoGrpcType;
  return new proto.inference.GRPCInferenceService(address, creds, options);
}

/** Metadata with a bearer credential. */
export function bearer(token: string): Metadata {
  const m = new Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
}

type Unary<Req, Res> = (req: Req, metadata: Metadata, options: CallOptions, cb: (err: ServiceError | null, res?: Res) => void) => unknown;

/** Calls a unary method; resolves with the response or rejects with the ServiceError (code, details, metadata). */
export function call<Req, Res>(client: InferenceClient, method: keyof InferenceClient, req: Req, metadata = new Metadata(), options: CallOptions = {}): Promise<Res> {
  const fn = (client[method] as unknown as Unary<Req, Res>).bind(client);
  return new Promise<Res>((resolve, reject) => fn(req, metadata, options, (err, res) => (err ? reject(err) : resolve(res as Res))));
}

/** The ServiceError a call rejected with. */
export async function callError(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("the call succeeded; an error was expected");
}

/** A BYTES tensor's raw form: each element a 4-byte little-endian length, then the UTF-8 bytes. */
export function rawBytes(...values: string[]): Buffer {
  return Buffer.concat(values.flatMap((v) => {
    const b = Buffer.from(v, "utf8");
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return [n, b];
  }));
}

/** The strings of a raw BYTES tensor. */
export function readRawBytes(buf: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < buf.length; ) {
    const n = buf.readUInt32LE(at);
    out.push(buf.subarray(at + 4, at + 4 + n).toString("utf8"));
    at += 4 + n;
  }
  return out;
}
