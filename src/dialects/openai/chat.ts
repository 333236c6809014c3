import { z } from "zod";
import type { ChatMessage, ToolCall, ToolChoice } from "../../core/chat.js";
import type { GenerationResult } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ChatRequest } from "../../services/chat.js";
import type { GenerationLimits } from "../native.js";
import { lengthControlsOf } from "../sampling.js";
import { formatOf, maxTokensOf, openaiSamplingFields, responseFormatField, samplingOf, stopsOf } from "./common.js";

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const content = z.union([z.string(), z.array(z.union([textPart, z.object({ type: z.string() }).passthrough()]))]);
const toolCall = z.object({
  id: z.string().max(256),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string().max(256), arguments: z.string().max(1_000_000) }),
});

const message = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content, name: z.string().optional() }),
  z.object({ role: z.literal("developer"), content, name: z.string().optional() }),
  z.object({ role: z.literal("user"), content, name: z.string().optional() }),
  z.object({ role: z.literal("assistant"), content: content.nullish(), tool_calls: z.array(toolCall).nullish(), name: z.string().optional() }),
  z.object({ role: z.literal("tool"), content, tool_call_id: z.string().max(256) }),
]);

const tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "tool names are 1-64 letters, digits, '_' or '-'"),
    description: z.string().max(8192).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

export const chatCompletionBody = z.object({
  ...openaiSamplingFields,
  messages: z.array(message).min(1).max(4096),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  response_format: responseFormatField,
  tools: z.array(tool).max(128).nullish(),
  tool_choice: z
    .union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) })])
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
});
export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;

function textOf(c: z.infer<typeof content> | null | undefined, index: number): string {
  if (c == null) return "";
  if (typeof c === "string") return c;
  return c
    .map((part) => {
      if (part.type !== "text") {
        throw new InfernoError("INVALID_REQUEST", `content part type '${part.type}' is not supported by text models`, undefined, {
          param: `messages[${index}].content`,
        });
      }
      return (part as z.infer<typeof textPart>).text;
    })
    .join("");
}

function toMessages(body: ChatCompletionBody): ChatMessage[] {
  return body.messages.map((m, i): ChatMessage => {
    switch (m.role) {
      case "developer":
      case "system":
        return { role: "system", content: textOf(m.content, i) };
      case "user":
        return { role: "user", content: textOf(m.content, i) };
      case "assistant":
        return {
          role: "assistant",
          content: textOf(m.content, i),
          ...(m.tool_calls?.length
            ? { toolCalls: m.tool_calls.map((c): ToolCall => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) }
            : {}),
        };
      case "tool":
        return { role: "tool", content: textOf(m.content, i), toolCallId: m.tool_call_id };
    }
  });
}

function toolChoiceOf(tc: ChatCompletionBody["tool_choice"]): ToolChoice | undefined {
  if (tc == null) return undefined;
  return typeof tc === "string" ? tc : { name: tc.function.name };
}

/** OpenAI chat body → the internal chat request for choice `i` (each choice samples with its own seed). */
export function toChatRequest(body: ChatCompletionBody, limits: GenerationLimits, choice = 0): ChatRequest {
  const format = formatOf(body.response_format);
  const toolChoice = toolChoiceOf(body.tool_choice);
  const maxTokens = maxTokensOf(body.max_completion_tokens ?? body.max_tokens, limits);
  return {
    model: body.model,
    messages: toMessages(body),
    maxTokens,
    stop: stopsOf(body.stop),
    sampling: samplingOf(body, choice),
    ...lengthControlsOf(body, maxTokens),
    ...(format ? { format } : {}),
    ...(body.logprobs ? { logprobs: body.top_logprobs ?? 0 } : {}),
    ...(body.tools?.length
      ? { tools: body.tools.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters })) }
      : {}),
    ...(toolChoice ? { toolChoice } : {}),
  };
}

export type FinishReasonOut = GenerationResult["finishReason"] | "tool_calls";

export const toolCallsOut = (calls: ToolCall[]) =>
  calls.map((c, index) => ({ index, id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } }));
