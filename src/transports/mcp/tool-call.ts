// What a tool needs from the transport that carries it, whichever that is (Streamable HTTP, or stdio in
// process): who calls, when to stop, how to report progress, and the tool's coded errors as MCP results.
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { z } from "zod";
import type { AuditType } from "../../audit/audit-log.js";
import type { Principal, Role } from "../../auth/principal.js";
import { isInfernoError, type InfernoError } from "../../errors/catalogue.js";
import { toInfernoError } from "../../errors/error-handler.js";

/** One tool call as a tool sees it. */
export interface ToolCall {
  principal: Principal;
  /** The rate-limit key the work is charged to (a batch's items run as it). */
  usageKey: string;
  /** Aborts on the client's notifications/cancelled, its disconnect, the time limit or the drain's grace. */
  signal: AbortSignal;
  /** Sends notifications/progress; undefined when the client sent no progressToken. */
  progress: ((p: { progress: number; total?: number; message?: string }) => Promise<void>) | undefined;
  /** Records what the call changed (a model loaded, say) in the audit log, as the caller, transport "mcp". */
  audit(type: AuditType, target?: string, details?: Record<string, unknown>): void;
}

/** A tool's answer: text for the model, and the same as JSON for programs (`structuredContent`). */
export interface ToolOutput {
  text: string;
  structured: Record<string, unknown>;
}

/** A tool: its input is the zod schema its REST route validates with, advertised as JSON Schema. */
export interface McpTool<S extends z.ZodType = z.ZodType> {
  name: string;
  title: string;
  description: string;
  /** Who may list and call it: any authenticated principal ("user") or admins. */
  role: Role;
  input: S;
  /** MCP's hints: a tool that only reads (list, status) or that changes the server (load, batch). */
  readOnly?: boolean;
  run(args: z.output<S>, call: ToolCall): Promise<ToolOutput>;
}

/** Declares a tool with its argument type inferred from its schema. */
export const defineTool = <S extends z.ZodType>(tool: McpTool<S>): McpTool => tool as unknown as McpTool;

export const mayUse = (principal: Principal, tool: McpTool) => tool.role === "user" || principal.role === "admin";

/** A coded error as a tool result: MCP reports a failed tool call in the result, so the agent can read it. */
export function errorResult(err: unknown): CallToolResult {
  const coded: InfernoError = isInfernoError(err) ? err : toInfernoError(err);
  const error = { code: coded.code, message: coded.message, details: coded.details ?? {}, ...(coded.param ? { param: coded.param } : {}) };
  return { isError: true, content: [{ type: "text", text: `${coded.code}: ${coded.message}` }], structuredContent: { error } };
}

export const okResult = (out: ToolOutput): CallToolResult => ({ content: [{ type: "text", text: out.text }], structuredContent: out.structured });
