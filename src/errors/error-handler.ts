import { randomBytes } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import type { ZodType } from "zod";
import { errorCatalogue, InfernoError, type ErrorCode } from "./catalogue.js";
import { noteErrorCode } from "../observability/request-log.js";
import { API_VERSION } from "../core/api-version.js";

/** Which envelope a route answers errors in; set per route (`config.dialect`) or by URL prefix. */
export type ErrorDialect = "native" | "openai" | "ollama" | "kserve";

declare module "fastify" {
  interface FastifyContextConfig {
    dialect?: ErrorDialect;
  }
}

const fastifyCodeMap: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_REQUEST",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_REQUEST",
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "INVALID_REQUEST",
  FST_ERR_VALIDATION: "INVALID_REQUEST",
};

/** Turns anything thrown into an InfernoError; unknown errors become INTERNAL_ERROR with no internals leaked. */
export function toInfernoError(err: unknown): InfernoError {
  if (err instanceof InfernoError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => ({
      path: `${v.instancePath || "/"}`.replace(/^\//, "").replace(/\//g, ".") || "(body)",
      message: v.message,
    }));
    const first = issues[0];
    const where = err.validationContext ?? "body";
    return new InfernoError(
      "INVALID_REQUEST",
      first ? `invalid ${where}: ${first.path}: ${first.message}` : `invalid ${where}`,
      { issues },
      first ? { param: first.path } : undefined,
    );
  }
  const fe = err as Partial<FastifyError>;
  const mapped = fe.code ? fastifyCodeMap[fe.code] : undefined;
  if (mapped) return new InfernoError(mapped, fe.message ?? mapped);
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new InfernoError("INVALID_REQUEST", fe.message ?? "bad request");
  }
  return new InfernoError("INTERNAL_ERROR", "internal server error", undefined, { cause: err });
}

/** Validates a body against a schema chosen at run time, failing like a route schema would. */
export function parseBody<T>(schema: ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message }));
  const first = issues[0]!;
  throw new InfernoError("INVALID_REQUEST", `invalid body: ${first.path}: ${first.message}`, { issues }, { param: first.path });
}

/** The body of an error in the given dialect. */
export function errorBody(err: InfernoError, dialect: ErrorDialect, requestId: string): Record<string, unknown> {
  // Ollama and the Open Inference Protocol both answer {"error": "message"}.
  if (dialect === "ollama" || dialect === "kserve") return { error: err.message };
  if (dialect === "openai") {
    return {
      error: { message: err.message, type: errorCatalogue[err.code].type, param: err.param ?? null, code: err.code.toLowerCase() },
    };
  }
  const retryAfter = err.details?.retry_after;
  return {
    // The API reference puts retry_after beside the code on a 429, as well as in details.
    error: { code: err.code, message: err.message, details: err.details ?? {}, ...(retryAfter !== undefined ? { retry_after: retryAfter } : {}) },
    request_id: requestId,
    timestamp: new Date().toISOString(),
  };
}

/** The dialect a URL's prefix implies, for a route (or a not-found URL) that does not set `config.dialect`. */
export function dialectOfUrl(url: string): ErrorDialect {
  return url.startsWith("/v1/") ? "openai" : url.startsWith("/api/") ? "ollama" : url.startsWith("/v2/") || url === "/v2" ? "kserve" : "native";
}

export function dialectOf(request: FastifyRequest): ErrorDialect {
  return request.routeOptions.config?.dialect ?? dialectOfUrl(request.url);
}

const SHEDDING = new Set<ErrorCode>(["SERVICE_UNAVAILABLE", "TIMEOUT", "INSUFFICIENT_MEMORY"]);

/** Load shedding (503 full queue or draining, 504, 507) is the server working as designed, not a fault. */
export const isShedding = (err: InfernoError): boolean => SHEDDING.has(err.code);

export function sendError(request: FastifyRequest, reply: FastifyReply, thrown: unknown): FastifyReply {
  const err = toInfernoError(thrown);
  const retryAfter = err.details?.retry_after;
  if (typeof retryAfter === "number" && !reply.hasHeader("retry-after")) reply.header("retry-after", String(Math.ceil(retryAfter)));
  if (isShedding(err)) request.log.warn({ code: err.code, reason: err.message }, "request refused under load");
  else if (err.status >= 500) request.log.error({ err: err.cause ?? err, code: err.code }, "request failed");
  else request.log.debug({ code: err.code, reason: err.message }, "request rejected");
  noteErrorCode(request, err.code);
  // Router refusals (frameworkErrors) come before any hook, so the API version is set here as well.
  if (!reply.hasHeader("api-version")) reply.header("api-version", API_VERSION);
  return reply.code(err.status).type("application/json").send(errorBody(err, dialectOf(request), request.id));
}

/**
 * Fastify's `frameworkErrors`: a URL the router cannot decode (`%zz`, an encoded lone surrogate) or a
 * parameter over maxParamLength. Without it Fastify writes its own uncoded body.
 */
export function frameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(request, reply, new InfernoError("INVALID_REQUEST", err.message, { reason: err.code }));
}

const CLIENT_ERRORS: Record<string, ErrorCode> = { HPE_HEADER_OVERFLOW: "HEADERS_TOO_LARGE", ERR_HTTP_REQUEST_TIMEOUT: "REQUEST_TIMEOUT" };

/**
 * The server's `clientError`: a request Node's HTTP parser refused (bad method, header or length, a
 * header block over maxHeaderBytes, a timeout) never becomes a Fastify request, so it is answered here,
 * in the native envelope, and the connection closed as Node does.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const code = CLIENT_ERRORS[err.code ?? ""] ?? "INVALID_REQUEST";
  const message = code === "INVALID_REQUEST" ? "malformed HTTP request" : code === "HEADERS_TOO_LARGE" ? "the request's headers are too large" : "the request was not received in time";
  const status = errorCatalogue[code].status;
  const body = JSON.stringify(errorBody(new InfernoError(code, message), "native", `req_${randomBytes(9).toString("base64url")}`));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nAPI-Version: ${API_VERSION}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new InfernoError("NOT_FOUND", `route ${request.method} ${request.url.split("?")[0]} not found`)),
  );
}
