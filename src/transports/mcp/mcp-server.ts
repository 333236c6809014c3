// One MCP server (the SDK's low-level `Server`) per session: tools filtered by the caller's role, coded
// argument checks, and each model's description as a resource. The transport (Streamable HTTP or stdio)
// supplies a `McpCaller`: who sent a message and how a call runs (its signal, limits, usage key).
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema, ErrorCode, ListResourcesRequestSchema, ListResourceTemplatesRequestSchema, ListToolsRequestSchema, McpError,
  ReadResourceRequestSchema, type ServerNotification, type ServerRequest,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import { describeModel } from "../../dialects/model-description.js";
import { InfernoError, isInfernoError } from "../../errors/catalogue.js";
import { parseBody, toInfernoError } from "../../errors/error-handler.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { VERSION } from "../../version.js";
import { errorResult, mayUse, okResult, type McpTool, type ToolCall, type ToolOutput } from "./tool-call.js";

export type McpExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What the transport carrying a session tells the server about each message. */
export interface McpCaller {
  /** Who sent the message (HTTP: the request's credential, checked by the auth hook; stdio: the process's). */
  principal(extra: McpExtra): Principal;
  /** Runs a tool call: the call's signal (the client's cancel included), usage key and limits come from here. */
  run(tool: McpTool, extra: McpExtra, work: (call: Omit<ToolCall, "progress">) => Promise<ToolOutput>): Promise<ToolOutput>;
}

const MODEL_URI = "inferno://models/";

const INSTRUCTIONS =
  "Inferno serves GGUF language models and ONNX models. Call list_models first: each model's capabilities say which tools it takes " +
  "(text-generation: generate, chat; embeddings: embed; reranking: rerank; tensor-inference: infer_tensor). " +
  "Each model's metadata is the resource inferno://models/{id}.";

/** JSON Schema of a tool's input as its route validates it (the request side: defaults are optional). */
function inputSchema(tool: McpTool) {
  const { $schema: _s, ...schema } = z.toJSONSchema(tool.input, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return { type: "object" as const, ...schema };
}

/** A resource failure as a JSON-RPC error carrying the coded error in `data`. */
function resourceError(err: unknown): McpError {
  const coded = isInfernoError(err) ? err : toInfernoError(err);
  const rpc = coded.status === 404 ? -32002 : coded.status < 500 ? ErrorCode.InvalidParams : ErrorCode.InternalError;
  return new McpError(rpc, `${coded.code}: ${coded.message}`, { code: coded.code, details: coded.details ?? {} });
}

export function createMcpServer(opts: { tools: McpTool[]; registry: ModelRegistry; caller: McpCaller }): Server {
  const { tools, registry, caller } = opts;
  const schemas = new Map(tools.map((t) => [t.name, inputSchema(t)]));
  const server = new Server(
    { name: "inferno", title: "Inferno", version: VERSION },
    { capabilities: { tools: {}, resources: {} }, instructions: INSTRUCTIONS },
  );

  server.setRequestHandler(ListToolsRequestSchema, (_req, extra) => {
    const principal = caller.principal(extra);
    return {
      tools: tools.filter((t) => mayUse(principal, t)).map((t) => ({
        name: t.name, title: t.title, description: t.description, inputSchema: schemas.get(t.name)!,
        annotations: { title: t.title, readOnlyHint: t.readOnly === true, openWorldHint: false },
      })),
    };
  });

  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const tool = tools.find((t) => t.name === req.params.name);
    if (!tool) return errorResult(new InfernoError("NOT_FOUND", `no tool named '${req.params.name}' (see tools/list)`, { tool: req.params.name }));
    const principal = caller.principal(extra);
    // Not listed for this role, and refused the same way as the route it stands for.
    if (!mayUse(principal, tool)) {
      return errorResult(new InfernoError("AUTHORIZATION_FAILED", `tool '${tool.name}' needs the admin role; '${principal.user}' has '${principal.role}'`, { required_role: tool.role }));
    }
    let args: unknown;
    try {
      args = parseBody(tool.input, req.params.arguments ?? {});
    } catch (err) {
      return errorResult(err);
    }
    const token = extra._meta?.progressToken;
    const progress = token === undefined ? undefined : (p: { progress: number; total?: number; message?: string }) =>
      extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, ...p } });
    try {
      return okResult(await caller.run(tool, extra, (call) => tool.run(args, { ...call, progress })));
    } catch (err) {
      return errorResult(err);
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, async () => {
    await registry.scan();
    return {
      resources: registry.list().map((m) => ({
        uri: MODEL_URI + encodeURIComponent(m.id), name: m.id, title: m.name, mimeType: "application/json",
        description: `The ${m.type} model '${m.id}': capabilities, load state, context size, file facts.`,
      })),
    };
  });

  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [{ uriTemplate: `${MODEL_URI}{id}`, name: "model", title: "A model's metadata", mimeType: "application/json" }],
  }));

  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const { uri } = req.params;
    try {
      if (!uri.startsWith(MODEL_URI)) throw new InfernoError("NOT_FOUND", `no resource '${uri}' (models are ${MODEL_URI}{id})`);
      let id: string;
      try {
        id = decodeURIComponent(uri.slice(MODEL_URI.length));
      } catch {
        throw new InfernoError("INVALID_REQUEST", `'${uri}' is not a valid model URI`, undefined, { param: "uri" });
      }
      const model = await describeModel(registry, await registry.get(id), true);
      return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify(model, null, 2) }] };
    } catch (err) {
      throw resourceError(err);
    }
  });
  return server;
}
