import type { ChatMessage, ToolCallSyntax, ToolChoice, ToolSpec } from "../core/chat.js";
import type { GenerateRequest, GenerationStream } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { toolCallSchema } from "../runtimes/llama/json-schema-subset.js";
import { startObserved, textModel } from "./generation.js";

/** A chat request: the generation settings of GenerateRequest with messages instead of a prompt. */
export interface ChatRequest extends Omit<GenerateRequest, "prompt"> {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  toolChoice?: ToolChoice;
}

/**
 * plain: no tools; forced: the reply is one call, generated under a grammar (works on any model);
 * auto: the model may call tools in its template's syntax, parsed from its reply.
 */
export type ToolMode = "plain" | "forced" | "auto";

export interface ChatGeneration {
  stream: GenerationStream;
  mode: ToolMode;
  syntax: ToolCallSyntax | undefined;
  toolNames: string[];
  /** The chat template that rendered the prompt. */
  template: string;
}

/** Renders the conversation with the model's template and starts it on the one generation path. */
export async function startChat(registry: ModelRegistry, req: ChatRequest, signal: AbortSignal): Promise<ChatGeneration> {
  const model = await textModel(registry, req.model);
  const choice = req.toolChoice ?? (req.tools?.length ? "auto" : "none");
  const tools = choice === "none" ? [] : (req.tools ?? []);
  if (tools.length === 0 && choice !== "none" && choice !== "auto") {
    throw new InfernoError("INVALID_REQUEST", "tool_choice requires tools", undefined, { param: "tool_choice" });
  }
  const forced = tools.length > 0 && choice !== "auto";
  if (forced && req.format) {
    throw new InfernoError("INVALID_REQUEST", "response_format cannot be combined with a forced tool_choice", undefined, {
      param: "response_format",
    });
  }
  const format = forced
    ? { type: "json_schema" as const, schema: toolCallSchema(tools, choice as "required" | { name: string }) }
    : req.format;
  let rendered;
  try {
    rendered = model.chat.render(req.messages, tools);
  } catch (err) {
    if (err instanceof InfernoError) throw err;
    throw new InfernoError("INVALID_REQUEST", `the chat template could not render these messages: ${(err as Error).message}`, undefined, {
      param: "messages",
    });
  }
  const { messages: _m, tools: _t, toolChoice: _c, ...settings } = req;
  const stream = await startObserved(
    registry,
    model,
    // Under a grammar the grammar decides where the reply ends; the template's stop texts (often "\n")
    // could otherwise cut valid JSON short.
    { ...settings, prompt: rendered.tokens, stop: format ? req.stop : [...req.stop, ...rendered.stops], ...(format ? { format } : {}) },
    signal,
    "chat",
  );
  return {
    stream,
    mode: forced ? "forced" : tools.length > 0 ? "auto" : "plain",
    syntax: model.chat.toolCallSyntax(),
    toolNames: tools.map((t) => t.name),
    template: model.chat.name,
  };
}
