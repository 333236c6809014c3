/** Chat messages in the shape every dialect converts to (OpenAI's roles; Ollama's map onto them). */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** Calls an assistant message made. */
  toolCalls?: ToolCall[];
  /** On a tool message: the call it answers. */
  toolCallId?: string;
  /** On a tool message: the tool's name, when the client gives it instead of an id (Ollama). */
  toolName?: string;
}

export interface ToolSpec {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters?: unknown;
}

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments. */
  arguments: string;
}

/** none: never call; auto: the model decides; required: some tool; {name}: that tool. */
export type ToolChoice = "none" | "auto" | "required" | { name: string };

/** How a model's chat template marks a tool call in plain text (from its chat wrapper), for `auto`. */
export interface ToolCallSyntax {
  prefixes: string[];
  paramsPrefix: string;
  suffix: string;
}
