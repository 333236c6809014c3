import {
  JinjaTemplateChatWrapper, LlamaText, resolveChatWrapper, SpecialTokensText,
  type ChatHistoryItem, type ChatModelFunctionCall, type ChatModelFunctions, type ChatModelResponse, type ChatWrapper, type LlamaModel, type Token,
} from "node-llama-cpp";
import type { ChatMessage, ToolCallSyntax, ToolSpec } from "../../core/chat.js";
import { InfernoError } from "../../errors/catalogue.js";

/** Renders chat messages into prompt tokens with the model's own template (or the one a registration chose). */
export class ChatRenderer {
  readonly wrapper: ChatWrapper;

  /** `template`: "auto" (the GGUF's Jinja template, else a wrapper picked by node-llama-cpp), a wrapper type name, or Jinja source. */
  constructor(private readonly model: LlamaModel, template = "auto") {
    this.wrapper = ChatRenderer.resolve(model, template);
  }

  get name(): string {
    return this.wrapper.wrapperName;
  }

  private static resolve(model: LlamaModel, template: string): ChatWrapper {
    if (template.includes("{{") || template.includes("{%")) {
      try {
        return new JinjaTemplateChatWrapper({ template });
      } catch (err) {
        throw new InfernoError("INVALID_REQUEST", `chat_template is not a usable Jinja template: ${(err as Error).message}`, undefined, {
          param: "chat_template",
        });
      }
    }
    try {
      return resolveChatWrapper(model, { type: template as "auto" });
    } catch (err) {
      throw new InfernoError("INVALID_REQUEST", `unknown chat_template '${template}': ${(err as Error).message}`, undefined, {
        param: "chat_template",
      });
    }
  }

  /** Prompt tokens ending where the assistant's reply starts, and the texts that end that reply. */
  render(messages: ChatMessage[], tools: ToolSpec[] = []): { tokens: Token[]; stops: string[] } {
    const history = toHistory(messages);
    const functions: Record<string, ChatModelFunctions[string]> = {};
    for (const t of tools) {
      functions[t.name] = { ...(t.description ? { description: t.description } : {}), ...(t.parameters ? { params: t.parameters as never } : {}) };
    }
    const state = this.wrapper.generateContextState({
      chatHistory: history,
      ...(tools.length ? { availableFunctions: functions, documentFunctionParams: true } : {}),
    });
    const stops = new Set<string>();
    for (const trigger of state.stopGenerationTriggers) {
      const text = plainText(trigger);
      if (text) stops.add(text);
    }
    return { tokens: state.contextText.tokenize(this.model.tokenizer), stops: [...stops] };
  }

  /** The plain-text form of this template's tool calls, when it has one. */
  toolCallSyntax(): ToolCallSyntax | undefined {
    const call = this.wrapper.settings.functions?.call;
    if (!call) return undefined;
    const prefix = plainText(call.prefix);
    if (!prefix) return undefined;
    const alternates = (call.prefixAlternateMatches ?? []).map(plainText).filter((p): p is string => !!p);
    return { prefixes: [prefix, ...alternates], paramsPrefix: plainText(call.paramsPrefix) ?? "", suffix: plainText(call.suffix) ?? "" };
  }
}

/** The text of a LlamaText made of strings and special-token texts; undefined if it holds special tokens. */
function plainText(value: unknown): string | undefined {
  const text = LlamaText.fromJSON((value instanceof Object && "toJSON" in value ? (value as LlamaText).toJSON() : value) as never);
  let out = "";
  for (const v of text.values) {
    if (typeof v === "string") out += v;
    else if (v instanceof SpecialTokensText) out += v.value;
    else return undefined;
  }
  return out || undefined;
}

/** OpenAI-style messages → node-llama-cpp history; tool results are folded into the call they answer. */
function toHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  /** Calls of the latest assistant message still waiting for their result, with their ids. */
  let open: Array<{ call: ChatModelFunctionCall; id: string }> = [];
  for (const m of messages) {
    if (m.role === "system") history.push({ type: "system", text: m.content });
    else if (m.role === "user") history.push({ type: "user", text: m.content });
    else if (m.role === "assistant") {
      const response: ChatModelResponse["response"] = m.content ? [m.content] : [];
      open = (m.toolCalls ?? []).map((c) => ({ id: c.id, call: { type: "functionCall", name: c.name, params: parseArguments(c.arguments), result: "" } }));
      response.push(...open.map((o) => o.call));
      history.push({ type: "model", response });
    } else {
      const i = open.findIndex((o) => (m.toolCallId !== undefined ? o.id === m.toolCallId : o.call.name === m.toolName));
      if (i !== -1) open.splice(i, 1)[0]!.call.result = m.content;
      else history.push({ type: "user", text: `Result of tool ${m.toolName ?? m.toolCallId ?? ""}: ${m.content}` });
    }
  }
  history.push({ type: "model", response: [] });
  return history;
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
