// What the OpenAPI document says about each route beyond its zod schemas: the family (tag) by URL
// prefix, a summary, and the bodies the schemas cannot say (streams, raw bytes, multipart). A route added
// later gets its family's tag, a generated summary, its auth and its errors without an entry here; an
// entry (or the route's own `schema.summary`/`description`/`tags`) only makes it read better.

/** The tag of each API family, first match by URL prefix; anything else is the native API. */
const FAMILIES: ReadonlyArray<{ prefix: string; tag: string }> = [
  { prefix: "/v1/", tag: "OpenAI" },
  { prefix: "/api/", tag: "Ollama" },
  { prefix: "/v2", tag: "KServe v2" },
  { prefix: "/auth/", tag: "Auth" },
  { prefix: "/batch", tag: "Batch" },
  { prefix: "/metrics", tag: "Admin & observability" },
  { prefix: "/traces", tag: "Admin & observability" },
  { prefix: "/audit", tag: "Admin & observability" },
  { prefix: "/webhooks", tag: "Admin & observability" },
  { prefix: "/health", tag: "Admin & observability" },
  { prefix: "/ws", tag: "WebSocket" },
  { prefix: "/mcp", tag: "MCP" },
  { prefix: "/openapi.json", tag: "Docs" },
  { prefix: "/docs", tag: "Docs" },
];

export const TAGS = [
  { name: "Native", description: "Inferno's own REST API: models, generation, embeddings, rerank, tensor inference." },
  { name: "OpenAI", description: "The OpenAI-compatible API under /v1 (errors in OpenAI's envelope)." },
  { name: "Ollama", description: "The Ollama-compatible API under /api (errors as {\"error\": \"...\"})." },
  { name: "KServe v2", description: "The Open Inference Protocol (KServe v2) under /v2, for tensor models." },
  { name: "Auth", description: "Login for JWTs and API-key management." },
  { name: "Batch", description: "Native batch jobs (the OpenAI batches API is under /v1/batches)." },
  { name: "Admin & observability", description: "Health, Prometheus metrics, traces, the audit log and webhooks." },
  { name: "WebSocket", description: "The WebSocket API (an upgrade, not a REST call)." },
  { name: "MCP", description: "Model Context Protocol for agents (Streamable HTTP transport); README, MCP." },
  { name: "Docs", description: "This document and the page that renders it." },
];

export const tagOf = (url: string): string => FAMILIES.find((f) => url === f.prefix || url.startsWith(f.prefix))?.tag ?? "Native";

type Stream = "sse" | "sse-optional" | "ndjson";

/** What the zod schemas cannot say about a route. */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** Its answer as a stream: always SSE, SSE with `stream: true`, or NDJSON unless `stream: false` (Ollama). */
  stream?: Stream;
  /** The success status, when not 200. */
  status?: number;
  /** Request media types in place of the converted JSON body. */
  requestContent?: Record<string, { schema: object }>;
  /** Success media types besides (or, for non-JSON answers, in place of) application/json. */
  responseContent?: Record<string, { schema: object }>;
  /** Replaces the success answer's JSON instead of adding to it. */
  responseOnly?: boolean;
  /** Header parameters the route reads outside its schemas. */
  headers?: Array<{ name: string; description: string }>;
}

const bytes = { type: "string", contentMediaType: "application/octet-stream" };
const text = { type: "string" };
const KSERVE_INFER: RouteDoc = {
  summary: "Run a tensor model (Open Inference Protocol)",
  description:
    "JSON tensors, or the binary data extension: the JSON header of `Inference-Header-Content-Length` bytes followed by the raw tensors " +
    "(any content type). Outputs asked with `binary_data` come back the same way, as application/octet-stream.",
  responseContent: { "application/octet-stream": { schema: bytes } },
  headers: [{ name: "Inference-Header-Content-Length", description: "Binary data extension: the length of the JSON header before the raw tensors." }],
};

/** Routes keyed "METHOD /url" as registered (`:param`, prefix included). */
export const ROUTE_DOCS: Record<string, RouteDoc> = {
  "GET /health": { summary: "Health (status only without a credential)" },
  "GET /metrics": {
    summary: "Prometheus metrics",
    description: "Public with --metrics-public.",
    responseContent: { "text/plain": { schema: text } },
    responseOnly: true,
  },
  "POST /metrics/custom": { summary: "Record a custom metric" },
  "GET /traces": { summary: "Recent trace spans" },
  "GET /audit": {
    summary: "The audit log of this replica",
    description: "Security-relevant events, oldest first, paged by id (`after` = the previous page's `next_after`). JSON lines with `Accept: application/x-ndjson` or `format=jsonl`.",
    responseContent: { "application/x-ndjson": { schema: text } },
  },
  "POST /webhooks": { summary: "Register a webhook", status: 201 },
  "GET /webhooks": { summary: "List webhooks" },
  "DELETE /webhooks/:id": { summary: "Delete a webhook" },
  "GET /webhooks/:id/deliveries": { summary: "A webhook's recent deliveries" },
  "POST /auth/login": { summary: "Log in: a JWT for a username and password" },
  "GET /auth/api-keys": { summary: "List API keys" },
  "POST /auth/api-keys": { summary: "Create an API key (shown once)", status: 201 },
  "DELETE /auth/api-keys/:id": { summary: "Revoke an API key" },
  "GET /models": { summary: "List models" },
  "GET /models/:id": { summary: "Describe a model" },
  "POST /models": { summary: "Register a model file", status: 201 },
  "POST /models/:id/load": { summary: "Load a model (with load options)" },
  "POST /models/:id/unload": { summary: "Unload a model" },
  "DELETE /models/:id": { summary: "Unregister a model" },
  "POST /inference": { summary: "Generate text (SSE with stream: true)", stream: "sse-optional" },
  "POST /inference/stream": { summary: "Generate text as server-sent events", stream: "sse", responseOnly: true },
  "POST /models/:id/inference": {
    summary: "Run a model: text for a GGUF model, tensors for an ONNX model",
    description: "A GGUF model takes {prompt, ...} (SSE with stream: true); an ONNX model takes {inputs, ...} or one raw tensor as application/octet-stream (with ?shape=&dtype=).",
    stream: "sse-optional",
    requestContent: {
      "application/json": { schema: { type: "object", additionalProperties: true, description: "{prompt, ...} or {inputs, ...}, by the model's kind." } },
      "application/octet-stream": { schema: { ...bytes, description: "One raw tensor (ONNX models); shape and dtype in the query." } },
    },
  },
  "POST /embeddings": { summary: "Embed texts" },
  "POST /rerank": { summary: "Rerank documents against a query" },
  "POST /batch": { summary: "Submit a batch of prompts" },
  "GET /batch": { summary: "List batches" },
  "GET /batch/:id": { summary: "A batch's status" },
  "GET /batch/:id/results": { summary: "A batch's results" },
  "DELETE /batch/:id": { summary: "Cancel a batch" },
  "GET /api/version": { summary: "Ollama API version" },
  "GET /api/tags": { summary: "List models (Ollama)" },
  "POST /api/show": { summary: "Show a model (Ollama)" },
  "GET /api/ps": { summary: "Loaded models (Ollama)" },
  "POST /api/generate": {
    summary: "Generate text (Ollama; NDJSON unless stream: false)",
    description: "Without a prompt, loads the model; keep_alive 0 unloads it, which needs the admin role.",
    stream: "ndjson",
  },
  "POST /api/chat": {
    summary: "Chat (Ollama; NDJSON unless stream: false)",
    description: "Without messages, loads the model; keep_alive 0 unloads it, which needs the admin role.",
    stream: "ndjson",
  },
  "POST /api/embed": { summary: "Embed texts (Ollama)" },
  "POST /api/embeddings": { summary: "Embed a prompt (Ollama, legacy)" },
  "GET /v2/health/live": { summary: "Liveness" },
  "GET /v2/health/ready": { summary: "Readiness" },
  "GET /v2": { summary: "Server metadata" },
  "GET /v2/models/:name": { summary: "Model metadata" },
  "GET /v2/models/:name/ready": { summary: "Model readiness (loads the model)" },
  "POST /v2/models/:name/infer": KSERVE_INFER,
  "GET /v2/models/:name/versions/:version": { summary: "Model metadata (version \"1\")" },
  "GET /v2/models/:name/versions/:version/ready": { summary: "Model readiness (version \"1\")" },
  "POST /v2/models/:name/versions/:version/infer": { ...KSERVE_INFER, summary: "Run a tensor model (version \"1\")" },
  "POST /v1/chat/completions": { summary: "Chat completions (SSE with stream: true)", stream: "sse-optional" },
  "POST /v1/completions": { summary: "Text completions (SSE with stream: true)", stream: "sse-optional" },
  "POST /v1/embeddings": { summary: "Embeddings" },
  "POST /v1/rerank": { summary: "Rerank documents" },
  "POST /v1/reranking": { summary: "Rerank documents (alias)" },
  "GET /v1/models": { summary: "List models" },
  "GET /v1/models/:id": { summary: "Retrieve a model" },
  "POST /v1/files": {
    summary: "Upload a batch input file",
    requestContent: {
      "multipart/form-data": {
        schema: {
          type: "object",
          required: ["purpose", "file"],
          properties: { purpose: { const: "batch" }, file: { ...bytes, description: "JSONL, one request per line." } },
        },
      },
    },
  },
  "GET /v1/files": { summary: "List files" },
  "GET /v1/files/:id": { summary: "Retrieve a file" },
  "GET /v1/files/:id/content": { summary: "A file's bytes", responseContent: { "application/octet-stream": { schema: bytes } }, responseOnly: true },
  "DELETE /v1/files/:id": { summary: "Delete a file" },
  "POST /v1/batches": { summary: "Create a batch from an uploaded file" },
  "GET /v1/batches": { summary: "List batches" },
  "GET /v1/batches/:id": { summary: "Retrieve a batch" },
  "POST /v1/batches/:id/cancel": { summary: "Cancel a batch" },
  "POST /mcp": {
    summary: "MCP messages (JSON-RPC)",
    description:
      "The Streamable HTTP transport of the Model Context Protocol: `initialize` (no Mcp-Session-Id) opens a session, every later " +
      "message carries its Mcp-Session-Id. Answers are JSON or an SSE stream (progress notifications, then the result).",
    stream: "sse-optional",
  },
  "GET /mcp": { summary: "MCP: the session's server-to-client stream", stream: "sse" },
  "DELETE /mcp": { summary: "MCP: close the session" },
  "GET /ws": {
    summary: "The WebSocket API",
    description:
      "Connect with `Upgrade: websocket`. The first message authenticates ({\"type\": \"auth\", \"token\": ...}) when auth is on, " +
      "since browsers cannot set headers on an upgrade; then inference, cancel and ping messages, many in flight per socket. " +
      "A plain GET is refused (400, or 401 without a credential).",
  },
  "GET /openapi.json": { summary: "This OpenAPI 3.1 document" },
  "GET /docs": { summary: "The API docs page (Swagger UI)", responseContent: { "text/html": { schema: text } }, responseOnly: true },
};

/** The route's entry, or a summary made from its method and path. */
export function routeDoc(method: string, url: string): RouteDoc {
  const entry = ROUTE_DOCS[`${method} ${url}`];
  if (entry) return entry;
  if (method === "OPTIONS") return { summary: "The methods of a public path (Allow header)", status: 204 };
  return { summary: `${method} ${url.replace(/:(\w+)/g, "{$1}")}` };
}

const SSE = { schema: { type: "string", description: "Server-sent events: `data: {json}` lines." } };
const NDJSON = { schema: { type: "string", description: "One JSON object per line; the last has done: true." } };

/** The success response's media types for a route's doc. */
export function successContent(doc: RouteDoc): Record<string, { schema: object }> {
  const json: Record<string, { schema: object }> = doc.responseOnly ? {} : { "application/json": { schema: {} } };
  const stream: Record<string, { schema: object }> = doc.stream === "ndjson" ? { "application/x-ndjson": NDJSON } : doc.stream ? { "text/event-stream": SSE } : {};
  if (doc.stream === "sse") return { ...stream, ...doc.responseContent };
  return { ...json, ...stream, ...doc.responseContent };
}
