// A gRPC call as the shared call scope sees it (src/transports/call-scope.ts).
import { Metadata, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { API_VERSION } from "../../core/api-version.js";
import type { CallSource } from "../call-scope.js";
import { grpcCode, statusName } from "./status.js";

export type AnyCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

const SERVICE = "/inference.GRPCInferenceService/";

function bearerOf(metadata: Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  return /^Bearer\s+(\S+)\s*$/i.exec(value)?.[1];
}

/** The peer's address without the port ("ipv4:127.0.0.1:5000" or "[::1]:5000" → the address). */
export function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, "");
  const v6 = /^\[(.*)\]:\d+$/.exec(bare);
  if (v6) return v6[1]!;
  const i = bare.lastIndexOf(":");
  return i > 0 && bare.indexOf(":") === i ? bare.slice(0, i) : bare;
}

export function grpcSource(call: AnyCall, method: string): CallSource {
  const streaming = method === "ModelStreamInfer";
  const deadline = call.getDeadline();
  const traceparent = call.metadata.get("traceparent")[0];
  const apiVersion = call.metadata.get("api-version")[0];
  return {
    transport: "grpc",
    route: SERVICE + method,
    token: bearerOf(call.metadata),
    peer: peerAddress(call.getPeer()),
    deadlineAt: deadline instanceof Date ? deadline.getTime() : Number(deadline),
    traceparent: typeof traceparent === "string" ? traceparent : undefined,
    onGone: (listener) => {
      call.on("cancelled", listener);
      return () => call.off("cancelled", listener);
    },
    statusOf: (code) => statusName(grpcCode(code)),
    credentialHint: "'authorization: Bearer <API key or JWT>' metadata",
    apiVersion: typeof apiVersion === "string" ? apiVersion : undefined,
    // Every call answers with the API version in its response headers, refusals included, and a unary call
    // with its traceparent; a stream's headers go once, before its requests, each its own trace.
    opened(own) {
      const headers = new Metadata();
      headers.set("api-version", API_VERSION);
      if (!streaming) headers.set("traceparent", own);
      call.sendMetadata(headers);
    },
  };
}
