// A request that is not a valid protobuf message of its type gets INVALID_ARGUMENT with a coded message,
// like any other bad request, instead of grpc-js's uncoded INTERNAL "Error deserializing request".
import type { ServiceDefinition } from "@grpc/grpc-js";
import { InfernoError } from "../../errors/catalogue.js";

const MALFORMED = Symbol("malformed protobuf");

interface Malformed {
  [MALFORMED]: string;
}

/** The service with each request deserializer answering a malformed message with a marker instead of throwing. */
export function tolerantDeserializers<T extends ServiceDefinition>(service: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    const parse = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return parse(bytes);
        } catch (err) {
          return { [MALFORMED]: (err as Error).message } satisfies Malformed;
        }
      },
    };
  }
  return out as T;
}

/** Throws INVALID_REQUEST when the request could not be parsed as its message type. */
export function checkWellFormed(request: unknown, type: string): void {
  if (typeof request === "object" && request !== null && MALFORMED in request) {
    throw new InfernoError("INVALID_REQUEST", `the request is not a valid ${type} protobuf message (${(request as Malformed)[MALFORMED]})`);
  }
}
