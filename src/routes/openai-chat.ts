import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { GenerationResult } from "../core/generation.js";
import { firstEager, mergeAsync } from "../core/stream-utils.js";
import { chatCompletionBody, toChatRequest } from "../dialects/openai/chat.js";
import { chatCompletionOf, choiceDeltas } from "../dialects/openai/chat-response.js";
import { usageOf } from "../core/generation.js";
import { nowSeconds, openaiId } from "../dialects/openai/common.js";
import type { GenerationLimits } from "../dialects/native.js";
import { errorBody } from "../errors/error-handler.js";
import { abortOnDisconnect, RawEvent, sendSse } from "../http/sse.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { startChat } from "../services/chat.js";

export const openaiChatRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits }> = async (app, { registry, limits }) => {
  app.post("/v1/chat/completions", { schema: { body: chatCompletionBody }, config: { dialect: "openai" } }, async (req, reply) => {
    const body = req.body;
    const n = body.n ?? 1;
    const controller = abortOnDisconnect(reply);
    const start = (i: number) => startChat(registry, toChatRequest(body, limits, i), controller.signal);
    const lazy = await firstEager(start);
    const id = openaiId("chatcmpl");
    const created = nowSeconds();
    const withLogprobs = body.logprobs === true;

    if (!body.stream) return (await chatCompletionOf(body, lazy, id, created)).response;

    const includeUsage = body.stream_options?.include_usage === true;
    const results: GenerationResult[] = [];
    const envelope = (choices: unknown[]) => ({
      id, object: "chat.completion.chunk", created, model: body.model, system_fingerprint: null, choices,
      ...(includeUsage ? { usage: null } : {}),
    });
    async function* choiceStream(i: number) {
      yield* choiceDeltas(await lazy(i), i, withLogprobs, (r) => results.push(r));
    }
    async function* events() {
      for await (const delta of mergeAsync(Array.from({ length: n }, (_, i) => choiceStream(i)))) yield envelope([delta]);
      if (includeUsage && results.length === n) {
        yield { ...envelope([]), usage: usageOf(results[0]!.promptTokens, results) };
      }
      yield new RawEvent("[DONE]");
    }
    await sendSse(req, reply, events(), (err) => errorBody(err, "openai", req.id));
    return reply;
  });
};
