import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { GenerationResult } from "../../core/generation.js";
import { nowSeconds, openaiId } from "../../dialects/openai/common.js";
import { completionBody, completionPieces, completionUsage, startCompletions, textCompletionOf } from "../../dialects/openai/completions.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { errorBody } from "../../errors/error-handler.js";
import { abortOnDisconnect, sendSse } from "../../http/sse.js";
import { openaiStreamEvents } from "./openai-stream.js";
import type { ModelRegistry } from "../../registry/model-registry.js";

export const openaiCompletionRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits }> = async (
  app,
  { registry, limits },
) => {
  app.post("/completions", { schema: { body: completionBody }, config: { dialect: "openai" } }, async (req, reply) => {
    const body = req.body;
    const controller = abortOnDisconnect(reply);
    const { n, prompts, total, promptOf, lazy } = await startCompletions(registry, body, limits, controller.signal);
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

    const results: GenerationResult[] = [];
    async function* choiceStream(i: number) {
      yield* completionPieces(await lazy(i), i, promptOf(i).echo, withLogprobs, (r) => (results[i] = r));
    }
    const events = openaiStreamEvents(
      { id, object: "text_completion", created, model: body.model, includeUsage: body.stream_options?.include_usage === true },
      Array.from({ length: total }, (_, i) => choiceStream(i)),
      () => (results.filter(Boolean).length === total ? usage(results) : undefined),
    );
    await sendSse(req, reply, events, (err) => errorBody(err, "openai", req.id));
    return reply;
  });
};
