// Coded errors as gRPC statuses: the status code a gRPC client branches on, the catalogue code in the
// message ("MODEL_NOT_FOUND: model 'x' is not registered") and in trailers, and the retry delay of a
// refusal in a `retry-after` trailer, as HTTP gives it in the header.
import { Metadata, status as Status, type StatusObject } from "@grpc/grpc-js";
import type { ErrorCode, InfernoError } from "../../errors/catalogue.js";

const CODES: Record<ErrorCode, Status> = {
  INVALID_REQUEST: Status.INVALID_ARGUMENT,
  CONTEXT_LENGTH_EXCEEDED: Status.INVALID_ARGUMENT,
  UNSUPPORTED_OPERATION: Status.INVALID_ARGUMENT,
  UNSUPPORTED_API_VERSION: Status.INVALID_ARGUMENT,
  INVALID_MODEL_FILE: Status.INVALID_ARGUMENT,
  UNSUPPORTED_MEDIA_TYPE: Status.INVALID_ARGUMENT,
  HEADERS_TOO_LARGE: Status.INVALID_ARGUMENT,
  AUTHENTICATION_FAILED: Status.UNAUTHENTICATED,
  AUTHORIZATION_FAILED: Status.PERMISSION_DENIED,
  PATH_NOT_ALLOWED: Status.PERMISSION_DENIED,
  MODEL_NOT_FOUND: Status.NOT_FOUND,
  NOT_FOUND: Status.NOT_FOUND,
  SLOW_CONSUMER: Status.CANCELLED,
  CANCELLED: Status.CANCELLED,
  REQUEST_TIMEOUT: Status.DEADLINE_EXCEEDED,
  MODEL_EXISTS: Status.ALREADY_EXISTS,
  USER_EXISTS: Status.ALREADY_EXISTS,
  MODEL_BUSY: Status.FAILED_PRECONDITION,
  MODEL_NOT_LOADED: Status.FAILED_PRECONDITION,
  MODEL_FILE_MISSING: Status.FAILED_PRECONDITION,
  PAYLOAD_TOO_LARGE: Status.RESOURCE_EXHAUSTED,
  RATE_LIMIT_EXCEEDED: Status.RESOURCE_EXHAUSTED,
  INSUFFICIENT_MEMORY: Status.RESOURCE_EXHAUSTED,
  INFERENCE_FAILED: Status.INTERNAL,
  MODEL_LOAD_FAILED: Status.INTERNAL,
  INTERNAL_ERROR: Status.INTERNAL,
  DOWNLOAD_FAILED: Status.UNAVAILABLE,
  SERVICE_UNAVAILABLE: Status.UNAVAILABLE,
  TIMEOUT: Status.DEADLINE_EXCEEDED,
};

/** The gRPC status code of a catalogue code. */
export const grpcCode = (code: ErrorCode): Status => CODES[code];

/** The status name as metrics label it ("OK", "NOT_FOUND", ...). */
export const statusName = (code: Status): string => Status[code] ?? String(code);

/** A coded error as the status a handler ends its call with. */
export function grpcStatus(err: InfernoError): Partial<StatusObject> & { code: Status; details: string } {
  const metadata = new Metadata();
  metadata.set("inferno-error-code", err.code);
  const retryAfter = err.details?.retry_after;
  if (typeof retryAfter === "number") metadata.set("retry-after", String(retryAfter));
  return { code: grpcCode(err.code), details: `${err.code}: ${err.message}`, metadata };
}
