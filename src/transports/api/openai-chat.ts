import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { GenerationResult } from "../../core/generation.js";
import { firstEager } from "../../core/stream-utils.js";
import { chatCompletionBody, toChatRequest } from "../../dialects/openai/chat.js";
import { chatCompletionOf, choiceDeltas } from "../../dialects/openai/chat-response.js";
import { usageOf } from "../../core/generation.js";
import { nowSeconds, openaiId } from "../../dialects/openai/common.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { errorBody } from "../../errors/error-handler.js";
import { abortOnDisconnect, sendSse } from "../../http/sse.js";
import { openaiStreamEvents } from "./openai-stream.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startChat } from "../../services/chat.js";

export const openaiChatRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits }> = async (app, { registry, limits }) => {
  app.post("/chat/completions", { schema: { body: chatCompletionBody }, config: { dialect: "openai" } }, async (req, reply) => {
    const body = req.body;
    const n = body.n ?? 1;
    const controller = abortOnDisconnect(reply);
    const start = (i: number) => startChat(registry, toChatRequest(body, limits, i), controller.signal);
    const lazy = await firstEager(start);
    const id = openaiId("chatcmpl");
    const created = nowSeconds();
    const withLogprobs = body.logprobs === true;

    if (!body.stream) return (await chatCompletionOf(body, lazy, id, created)).response;

    const results: GenerationResult[] = [];
    async function* choiceStream(i: number) {
      yield* choiceDeltas(await lazy(i), i, withLogprobs, (r) => results.push(r));
    }
    const events = openaiStreamEvents(
      { id, object: "chat.completion.chunk", created, model: body.model, includeUsage: body.stream_options?.include_usage === true },
      Array.from({ length: n }, (_, i) => choiceStream(i)),
      () => (results.length === n ? usageOf(results[0]!.promptTokens, results) : undefined),
    );
    await sendSse(req, reply, events, (err) => errorBody(err, "openai", req.id));
    return reply;
  });
};
