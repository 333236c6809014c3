import type { ToolCall } from "../../core/chat.js";
import type { GenerationChunk, GenerationResult, TokenLogprob } from "../../core/generation.js";
import { parseAutoCalls, parseForcedCall, ToolCallHoldback } from "../../core/tool-calls.js";
import type { ChatGeneration } from "../../services/chat.js";
import { usageOf } from "../../core/generation.js";
import { chatLogprob, nowSeconds, openaiId } from "./common.js";
import { toolCallsOut, type ChatCompletionBody, type FinishReasonOut } from "./chat.js";

/** One choice's reply once generation ended: content, tool calls and why it finished. */
export interface ChoiceOutcome {
  content: string | null;
  calls: ToolCall[];
  finishReason: FinishReasonOut;
}

/** Turns the generated text into content or tool calls according to the chat's tool mode. */
export function outcomeOf(gen: ChatGeneration, text: string, result: GenerationResult): ChoiceOutcome {
  if (gen.mode === "forced") {
    const call = parseForcedCall(text);
    // A call cut off by max_tokens is not a call: return what was generated, as OpenAI does.
    if (call) return { content: null, calls: [call], finishReason: "tool_calls" };
    return { content: text, calls: [], finishReason: result.finishReason };
  }
  if (gen.mode === "auto") {
    const { content, calls } = parseAutoCalls(text, gen.syntax, gen.toolNames);
    if (calls.length) return { content: content.trim() ? content : null, calls, finishReason: "tool_calls" };
  }
  return { content: text, calls: [], finishReason: result.finishReason };
}

/** Non-streamed: one `choices[]` entry. */
export async function collectChoice(gen: ChatGeneration, index: number, withLogprobs: boolean) {
  let text = "";
  const logprobs: TokenLogprob[] = [];
  for (;;) {
    const step = await gen.stream.next();
    if (step.done) {
      const outcome = outcomeOf(gen, text, step.value);
      return {
        result: step.value,
        choice: {
          index,
          message: {
            role: "assistant" as const,
            content: outcome.content,
            ...(outcome.calls.length ? { tool_calls: toolCallsOut(outcome.calls) } : {}),
            refusal: null,
          },
          logprobs: withLogprobs ? { content: logprobs.map(chatLogprob), refusal: null } : null,
          finish_reason: outcome.finishReason,
        },
      };
    }
    text += step.value.text;
    if (step.value.logprobs) logprobs.push(...step.value.logprobs);
  }
}

/**
 * Non-streamed: waits for every choice (`start(i)` gives choice i's generation) and builds the
 * `chat.completion` object, as `POST /v1/chat/completions` and chat batch items answer it.
 */
export async function chatCompletionOf(
  body: ChatCompletionBody,
  start: (i: number) => Promise<ChatGeneration>,
  id = openaiId("chatcmpl"),
  created = nowSeconds(),
) {
  const withLogprobs = body.logprobs === true;
  const outs = await Promise.all(Array.from({ length: body.n ?? 1 }, (_, i) => start(i).then((g) => collectChoice(g, i, withLogprobs))));
  const results = outs.map((o) => o.result);
  const response = {
    id,
    object: "chat.completion" as const,
    created,
    model: body.model,
    system_fingerprint: null,
    choices: outs.map((o) => o.choice),
    usage: usageOf(results[0]!.promptTokens, results),
  };
  return { response, results };
}

export type ChoiceDelta = {
  index: number;
  delta: Record<string, unknown>;
  logprobs: { content: unknown[]; refusal: null } | null;
  finish_reason: FinishReasonOut | null;
};

/**
 * Streamed: the deltas of one choice. Forced calls are sent whole at the end; in auto mode text that
 * may start a call is held back until it is known to be content.
 */
export async function* choiceDeltas(
  gen: ChatGeneration,
  index: number,
  withLogprobs: boolean,
  onResult: (r: GenerationResult) => void,
): AsyncGenerator<ChoiceDelta, void, void> {
  const lp = (chunk?: GenerationChunk) => (withLogprobs ? { content: (chunk?.logprobs ?? []).map(chatLogprob), refusal: null } : null);
  yield { index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null };
  const holdback = gen.mode === "auto" ? new ToolCallHoldback(gen.syntax) : undefined;
  let text = "";
  try {
    for (;;) {
      const step = await gen.stream.next();
      if (step.done) {
        onResult(step.value);
        const outcome = outcomeOf(gen, text, step.value);
        if (outcome.calls.length) {
          const before = holdback ? parseAutoCalls(holdback.rest(), gen.syntax, gen.toolNames).content : "";
          if (before.trim()) yield { index, delta: { content: before }, logprobs: lp(), finish_reason: null };
          yield { index, delta: { tool_calls: toolCallsOut(outcome.calls) }, logprobs: null, finish_reason: null };
        } else if (gen.mode !== "plain") {
          // Nothing turned out to be a call: release what was held back as content.
          const rest = holdback ? holdback.rest() : text;
          if (rest) yield { index, delta: { content: rest }, logprobs: lp(), finish_reason: null };
        }
        yield { index, delta: {}, logprobs: null, finish_reason: outcome.finishReason };
        return;
      }
      const chunk = step.value;
      text += chunk.text;
      if (gen.mode === "forced") continue;
      const visible = holdback ? holdback.push(chunk.text) : chunk.text;
      if (visible) yield { index, delta: { content: visible }, logprobs: lp(chunk), finish_reason: null };
    }
  } finally {
    await gen.stream.return(undefined as never);
  }
}
