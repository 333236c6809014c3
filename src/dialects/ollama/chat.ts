import { z } from "zod";
import type { ChatMessage, ToolCall } from "../../core/chat.js";
import type { GenerationResult } from "../../core/generation.js";
import { mapGeneration } from "../../core/stream-utils.js";
import { newToolCallId, parseAutoCalls, ToolCallHoldback } from "../../core/tool-calls.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ChatGeneration, ChatRequest } from "../../services/chat.js";
import type { GenerationLimits } from "../native.js";
import { durationsOf, type Timing } from "./generate.js";
import { timestamp } from "./models.js";
import { checkThink, formatField, formatOf, keepAliveField, ollamaOptions, settingsOf, thinkField } from "./options.js";

const toolCallIn = z.object({
  id: z.string().max(256).nullish(),
  function: z.object({
    name: z.string().max(256),
    // Ollama sends an object; a JSON string is accepted too, as OpenAI-minded clients send one.
    arguments: z.union([z.record(z.string(), z.unknown()), z.string().max(1_000_000)]).nullish(),
    index: z.number().nullish(),
  }),
});

const messageIn = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string().max(1_000_000).nullish(),
  images: z.array(z.string()).nullish(),
  tool_calls: z.array(toolCallIn).max(128).nullish(),
  tool_name: z.string().max(256).nullish(),
  tool_call_id: z.string().max(256).nullish(),
  thinking: z.string().nullish(),
});

const toolIn = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "tool names are 1-64 letters, digits, '_' or '-'"),
    description: z.string().max(8192).nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
  }),
});

export const chatBody = z.object({
  model: z.string().min(1).max(256),
  messages: z.array(messageIn).max(4096).nullish(),
  tools: z.array(toolIn).max(128).nullish(),
  format: formatField,
  options: ollamaOptions,
  stream: z.boolean().nullish(),
  keep_alive: keepAliveField,
  think: thinkField,
});
export type ChatBody = z.infer<typeof chatBody>;

function toMessages(body: ChatBody): ChatMessage[] {
  return (body.messages ?? []).map((m, i): ChatMessage => {
    if (m.images?.length) {
      throw new InfernoError("INVALID_REQUEST", `model '${body.model}' is a text model and does not accept images`, undefined, {
        param: `messages[${i}].images`,
      });
    }
    const content = m.content ?? "";
    if (m.role === "assistant" && m.tool_calls?.length) {
      const toolCalls = m.tool_calls.map((c): ToolCall => {
        const args = c.function.arguments ?? {};
        return { id: c.id ?? newToolCallId(), name: c.function.name, arguments: typeof args === "string" ? args : JSON.stringify(args) };
      });
      return { role: "assistant", content, toolCalls };
    }
    if (m.role === "tool") {
      return { role: "tool", content, ...(m.tool_call_id ? { toolCallId: m.tool_call_id } : {}), ...(m.tool_name ? { toolName: m.tool_name } : {}) };
    }
    return { role: m.role, content };
  });
}

/** `/api/chat` → the internal chat request. Ollama has no tool_choice: with tools the model decides ("auto"). */
export function toChatRequest(id: string, body: ChatBody, limits: GenerationLimits): ChatRequest {
  checkThink(body.think, body.model);
  const format = formatOf(body.format);
  return {
    model: id,
    messages: toMessages(body),
    ...settingsOf(body.options, limits),
    ...(format ? { format } : {}),
    ...(body.tools?.length
      ? {
          tools: body.tools.map((t) => ({
            name: t.function.name,
            ...(t.function.description ? { description: t.function.description } : {}),
            ...(t.function.parameters ? { parameters: t.function.parameters } : {}),
          })),
          toolChoice: "auto" as const,
        }
      : {}),
  };
}

/** Ollama's tool calls carry their arguments as an object, not as JSON text. */
function toolCallsOut(calls: ToolCall[]) {
  return calls.map((c, index) => {
    const args: unknown = JSON.parse(c.arguments);
    const argumentsObject = args !== null && typeof args === "object" && !Array.isArray(args) ? args : {};
    return { id: c.id, function: { index, name: c.name, arguments: argumentsObject } };
  });
}

/** Splits the reply into content and tool calls (only when tools were offered). */
function outcomeOf(gen: ChatGeneration, text: string): { content: string; calls: ToolCall[] } {
  if (gen.mode !== "auto") return { content: text, calls: [] };
  const { content, calls } = parseAutoCalls(text, gen.syntax, gen.toolNames);
  return calls.length ? { content: content.trim() ? content : "", calls } : { content: text, calls: [] };
}

const message = (content: string, calls: ToolCall[] = []) => ({
  role: "assistant" as const,
  content,
  ...(calls.length ? { tool_calls: toolCallsOut(calls) } : {}),
});

const doneOut = (model: string, r: GenerationResult, t: Timing, content = "", calls: ToolCall[] = []) => ({
  model,
  created_at: timestamp(),
  message: message(content, calls),
  done: true,
  done_reason: r.finishReason,
  ...durationsOf(r, t),
});

/** The whole reply, non-streamed. */
export async function collectChat(gen: ChatGeneration, model: string, t: Timing) {
  let text = "";
  for (;;) {
    const step = await gen.stream.next();
    if (step.done) {
      const { content, calls } = outcomeOf(gen, text);
      return doneOut(model, step.value, t, content, calls);
    }
    text += step.value.text;
  }
}

/**
 * The streamed reply: content as it comes, then one chunk with any tool calls, then the final object.
 * With tools, text that may begin a call is held back until it is known to be content.
 */
export function chatEvents(gen: ChatGeneration, model: string, t: Timing): AsyncIterable<object> {
  const holdback = gen.mode === "auto" ? new ToolCallHoldback(gen.syntax) : undefined;
  const chunk = (content: string, calls: ToolCall[] = []) => ({ model, created_at: timestamp(), message: message(content, calls), done: false });
  let text = "";
  return mapGeneration<object>(
    gen.stream,
    (c) => {
      text += c.text;
      const visible = holdback ? holdback.push(c.text) : c.text;
      return visible ? chunk(visible) : undefined;
    },
    (r) => {
      const out: object[] = [];
      if (holdback) {
        const { calls } = outcomeOf(gen, text);
        const held = holdback.rest();
        const before = calls.length ? parseAutoCalls(held, gen.syntax, gen.toolNames).content : held;
        if (calls.length ? before.trim() : before) out.push(chunk(before));
        if (calls.length) out.push(chunk("", calls));
      }
      out.push(doneOut(model, r, t));
      return out;
    },
  );
}

/** The answer to a chat with no messages: the model was loaded, or unloaded (keep_alive 0). */
export const chatStatus = (model: string, reason: "load" | "unload") => ({
  model,
  created_at: timestamp(),
  message: { role: "assistant" as const, content: "" },
  done: true,
  done_reason: reason,
});
