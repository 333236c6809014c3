/** Every coded error Inferno returns: the status it maps to and the OpenAI `type` used on /v1 routes. */
export const errorCatalogue = {
  INVALID_REQUEST: { status: 400, type: "invalid_request_error" },
  CONTEXT_LENGTH_EXCEEDED: { status: 400, type: "invalid_request_error" },
  UNSUPPORTED_OPERATION: { status: 400, type: "invalid_request_error" },
  /** The request's API-Version (gRPC `api-version`) names a major this server does not serve, or is malformed. */
  UNSUPPORTED_API_VERSION: { status: 400, type: "invalid_request_error" },
  AUTHENTICATION_FAILED: { status: 401, type: "authentication_error" },
  AUTHORIZATION_FAILED: { status: 403, type: "permission_error" },
  PATH_NOT_ALLOWED: { status: 403, type: "permission_error" },
  MODEL_NOT_FOUND: { status: 404, type: "not_found_error" },
  NOT_FOUND: { status: 404, type: "not_found_error" },
  /** A WebSocket client that stopped reading its messages (the server does not buffer for it without bound). */
  SLOW_CONSUMER: { status: 408, type: "invalid_request_error" },
  /** A client that did not finish sending its request within Node's request timeout. */
  REQUEST_TIMEOUT: { status: 408, type: "invalid_request_error" },
  MODEL_EXISTS: { status: 409, type: "conflict_error" },
  /** The client cancelled its request (IPC `cancel`); 499 as nginx logs a client that closed first. */
  CANCELLED: { status: 499, type: "invalid_request_error" },
  MODEL_BUSY: { status: 409, type: "conflict_error" },
  MODEL_NOT_LOADED: { status: 409, type: "conflict_error" },
  /** A registered model whose file was renamed or deleted: it is listed (missing: true) but not served. */
  MODEL_FILE_MISSING: { status: 409, type: "conflict_error" },
  USER_EXISTS: { status: 409, type: "conflict_error" },
  PAYLOAD_TOO_LARGE: { status: 413, type: "invalid_request_error" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, type: "invalid_request_error" },
  /** A header block over maxHeaderBytes, refused by Node's HTTP parser. */
  HEADERS_TOO_LARGE: { status: 431, type: "invalid_request_error" },
  INVALID_MODEL_FILE: { status: 422, type: "invalid_request_error" },
  RATE_LIMIT_EXCEEDED: { status: 429, type: "rate_limit_error" },
  INFERENCE_FAILED: { status: 500, type: "server_error" },
  /** A model download (POST /models/pull) failed upstream: an HTTP error, a dropped or short transfer. */
  DOWNLOAD_FAILED: { status: 502, type: "server_error" },
  MODEL_LOAD_FAILED: { status: 500, type: "server_error" },
  INTERNAL_ERROR: { status: 500, type: "server_error" },
  SERVICE_UNAVAILABLE: { status: 503, type: "server_error" },
  TIMEOUT: { status: 504, type: "server_error" },
  INSUFFICIENT_MEMORY: { status: 507, type: "server_error" },
} as const satisfies Record<string, { status: number; type: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** An error meant for the client: a code from the catalogue, a message, and optional details. */
export class InfernoError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** OpenAI's `param` (the offending request field), when known. */
  readonly param: string | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown; param?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "InfernoError";
    this.code = code;
    this.details = details;
    this.param = options?.param;
  }

  get status(): number {
    return errorCatalogue[this.code].status;
  }
}

export const isInfernoError = (err: unknown): err is InfernoError => err instanceof InfernoError;
