// A request that is not a valid protobuf message of its type gets INVALID_ARGUMENT with a coded message,
// like any other bad request, instead of grpc-js's uncoded INTERNAL "Error deserializing request".
import type { ServiceDefinition } from "@grpc/grpc-js";
import { InfernoError } from "../../errors/catalogue.js";
import { OWN_BUFFER_BYTES, ownBuffer } from "../../runtimes/onnx/session-protocol.js";

const MALFORMED = Symbol("malformed protobuf");

interface Malformed {
  [MALFORMED]: string;
}

/**
 * The service with each request deserializer answering a malformed message with a marker instead of throwing,
 * and claiming a large message's buffer for the request (ownMessage), so that its raw tensors can be moved to
 * the session's thread without a copy.
 */
export function tolerantDeserializers<T extends ServiceDefinition>(service: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    const parse = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          ownMessage(bytes);
          return parse(bytes);
        } catch (err) {
          return { [MALFORMED]: (err as Error).message } satisfies Malformed;
        }
      },
    };
  }
  return out as T;
}

/**
 * Marks the buffer of a large message as the request's own (ownBuffer). grpc-js joins a message's frames into a
 * buffer of its own (Buffer.concat of the 5-byte gRPC prefix and the body), hands the deserializer a view of all
 * but the prefix, and reads none of it after the call; a view that ends where its buffer ends, in a buffer far
 * larger than a pool slab, is that. Nothing else reads the bytes once the request is decoded.
 */
function ownMessage(bytes: Buffer): void {
  const buffer = bytes.buffer;
  if (bytes.byteLength >= OWN_BUFFER_BYTES && bytes.byteOffset <= 5 && bytes.byteOffset + bytes.byteLength === buffer.byteLength && buffer instanceof ArrayBuffer) {
    ownBuffer(buffer);
  }
}

/** Throws INVALID_REQUEST when the request could not be parsed as its message type. */
export function checkWellFormed(request: unknown, type: string): void {
  if (typeof request === "object" && request !== null && MALFORMED in request) {
    throw new InfernoError("INVALID_REQUEST", `the request is not a valid ${type} protobuf message (${(request as Malformed)[MALFORMED]})`);
  }
}
