import { errorCatalogue, type ErrorCode } from "../errors/catalogue.js";
import type { ErrorDialect } from "../errors/error-handler.js";

const codes = Object.keys(errorCatalogue) as ErrorCode[];

/** The component name of each dialect's error envelope (the shapes errorBody writes). */
export const ENVELOPE: Record<ErrorDialect, string> = {
  native: "NativeError",
  openai: "OpenAIError",
  ollama: "OllamaError",
  kserve: "KServeError",
};

/** The envelopes as OpenAPI 3.1 (JSON Schema 2020-12) schemas, for `components.schemas`. */
export const envelopeSchemas = {
  NativeError: {
    type: "object",
    description: "The native error envelope (routes outside /v1, /api and /v2).",
    required: ["error", "request_id", "timestamp"],
    properties: {
      error: {
        type: "object",
        required: ["code", "message", "details"],
        properties: {
          code: { type: "string", enum: codes },
          message: { type: "string" },
          details: { type: "object", additionalProperties: true },
          retry_after: { type: "number", description: "Seconds to wait, on a 429 (also in details and the Retry-After header)." },
        },
      },
      request_id: { type: "string", description: "The request's id, as in the x-request-id header." },
      timestamp: { type: "string", format: "date-time" },
    },
    examples: [
      {
        error: { code: "MODEL_NOT_FOUND", message: "model 'llama' not found", details: {} },
        request_id: "req_3v2Qm9bXkT1a",
        timestamp: "2025-01-01T00:00:00.000Z",
      },
    ],
  },
  OpenAIError: {
    type: "object",
    description: "OpenAI's error envelope (routes under /v1).",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["message", "type", "param", "code"],
        properties: {
          message: { type: "string" },
          type: { type: "string", enum: [...new Set(codes.map((c) => errorCatalogue[c].type))] },
          param: { type: ["string", "null"], description: "The offending request field, when known." },
          code: { type: "string", enum: codes.map((c) => c.toLowerCase()) },
        },
      },
    },
  },
  OllamaError: {
    type: "object",
    description: "Ollama's error envelope (routes under /api); a streamed answer ends with one such line on failure.",
    required: ["error"],
    properties: { error: { type: "string" } },
  },
  KServeError: {
    type: "object",
    description: "The Open Inference Protocol's error envelope (routes under /v2).",
    required: ["error"],
    properties: { error: { type: "string" } },
  },
} as const;

/** What a route's doc needs to know to list the errors it can answer. */
export interface ErrorFacts {
  dialect: ErrorDialect;
  isPublic: boolean;
  admin: boolean;
  /** The route takes input that is validated (a body, query or path parameters). */
  hasInput: boolean;
  /** The route names a resource (a path parameter or a model in its body) that may not exist. */
  namesResource: boolean;
  rateLimited: boolean;
}

/** The statuses a route answers with a coded error, besides `default` (any other code of the catalogue). */
export function errorStatuses(f: ErrorFacts): number[] {
  const statuses = [
    ...(f.hasInput ? [400] : []),
    ...(f.isPublic ? [] : [401]),
    ...(f.admin ? [403] : []),
    ...(f.namesResource ? [404] : []),
    ...(f.rateLimited ? [429] : []),
    503,
  ];
  return statuses;
}

const WHY: Record<number, string> = {
  401: "No valid credential (API key or JWT). The answer carries `WWW-Authenticate: Bearer`.",
  403: "The credential's role may not do this (this route needs the admin role).",
  429: "A rate limit was exceeded (when rate limits are on); see Retry-After and the x-ratelimit-* headers.",
  503: "The server is shutting down, or the model's queue is full.",
};

/** A response object for an error status in a dialect's envelope, naming the codes it can carry. */
export function errorResponse(status: number | "default", dialect: ErrorDialect) {
  const matching = status === "default" ? [] : codes.filter((c) => errorCatalogue[c].status === status);
  const description =
    status === "default"
      ? "Any other coded error of the catalogue (e.g. 409, 413, 415, 500, 504, 507)."
      : `${WHY[status] ?? "Coded error."} Codes: ${matching.join(", ")}.`;
  return { description, content: { "application/json": { schema: { $ref: `#/components/schemas/${ENVELOPE[dialect]}` } } } };
}
