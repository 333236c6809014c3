import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { GenerationResult } from "../core/generation.js";
import { firstEager, mergeAsync } from "../core/stream-utils.js";
import { nowSeconds, openaiId } from "../dialects/openai/common.js";
import {
  checkCompletionBody, completionBody, completionPieces, completionUsage, needsPromptTools, preparePrompts, promptTools, textCompletionOf,
  toGenerateRequest,
} from "../dialects/openai/completions.js";
import type { GenerationLimits } from "../dialects/native.js";
import { errorBody } from "../errors/error-handler.js";
import { abortOnDisconnect, RawEvent, sendSse } from "../http/sse.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { startGeneration, textModel } from "../services/generation.js";

export const openaiCompletionRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits }> = async (
  app,
  { registry, limits },
) => {
  app.post("/v1/completions", { schema: { body: completionBody }, config: { dialect: "openai" } }, async (req, reply) => {
    const body = req.body;
    checkCompletionBody(body, limits);
    const n = body.n ?? 1;
    const prompts = preparePrompts(body, needsPromptTools(body) ? promptTools(await textModel(registry, body.model)) : undefined);
    const total = prompts.length * n;
    const controller = abortOnDisconnect(reply);
    // Choice i is choice i % n of prompt i / n: OpenAI numbers choices prompt by prompt.
    const promptOf = (i: number) => prompts[Math.floor(i / n)]!;
    const start = (i: number) => startGeneration(registry, toGenerateRequest(body, limits, promptOf(i), i % n), controller.signal);
    const lazy = await firstEager(start);
    const id = openaiId("cmpl");
    const created = nowSeconds();
    const withLogprobs = body.logprobs != null;
    const usage = (results: GenerationResult[]) => completionUsage(prompts.length, n, results);

    if (!body.stream) {
      try {
        return (await textCompletionOf(body, prompts, lazy, id, created)).response;
      } catch (err) {
        controller.abort(err); // stop the choices that did start
        throw err;
      }
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const results: GenerationResult[] = [];
    const envelope = (choices: unknown[]) => ({
      id, object: "text_completion", created, model: body.model, system_fingerprint: null, choices,
      ...(includeUsage ? { usage: null } : {}),
    });
    async function* choiceStream(i: number) {
      yield* completionPieces(await lazy(i), i, promptOf(i).echo, withLogprobs, (r) => (results[i] = r));
    }
    async function* events() {
      for await (const piece of mergeAsync(Array.from({ length: total }, (_, i) => choiceStream(i)))) yield envelope([piece]);
      if (includeUsage && results.filter(Boolean).length === total) yield { ...envelope([]), usage: usage(results) };
      yield new RawEvent("[DONE]");
    }
    await sendSse(req, reply, events(), (err) => errorBody(err, "openai", req.id));
    return reply;
  });
};
