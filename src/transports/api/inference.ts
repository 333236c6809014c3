import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { collectGeneration, type GenerateRequest } from "../../core/generation.js";
import {
  inferenceBody, inferenceResponse, modelInferenceResponse, nativeSse, promptBody, toGenerateRequest, type GenerationLimits,
} from "../../dialects/native.js";
import { tensorBody } from "../../dialects/tensor.js";
import { errorBody, parseBody } from "../../errors/error-handler.js";
import { mapGeneration } from "../../core/stream-utils.js";
import { abortOnDisconnect, sendSse } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startGeneration } from "../../services/generation.js";
import { tensorInference, type TensorLimits } from "../../services/tensors.js";
import { modelIdParams } from "../../http/params.js";

export const inferenceRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: GenerationLimits & TensorLimits }> = async (
  app,
  { registry, limits },
) => {
  /** Runs a request streamed (SSE) or whole; the client leaving aborts generation either way. */
  async function run(request: FastifyRequest, reply: FastifyReply, gen: GenerateRequest, stream: boolean, whole: (r: Awaited<ReturnType<typeof collectGeneration>>) => unknown) {
    const controller = abortOnDisconnect(reply);
    const generation = await startGeneration(registry, gen, controller.signal);
    if (stream) {
      const events = mapGeneration<object>(generation, (c) => nativeSse.chunk(c.text, c.index), (r) => [nativeSse.done(r)]);
      await sendSse(request, reply, events, (err) => ({ done: true, finish_reason: "error", ...errorBody(err, "native", request.id) }));
      return reply;
    }
    return whole(await collectGeneration(generation));
  }

  app.post("/inference", { schema: { body: inferenceBody } }, async (req, reply) => {
    const gen = toGenerateRequest(req.body.model, req.body, limits);
    const id = `inf_${randomBytes(9).toString("base64url")}`;
    return run(req, reply, gen, req.body.stream === true, (r) => inferenceResponse(id, req.body.model, r));
  });

  app.post("/inference/stream", { schema: { body: inferenceBody } }, async (req, reply) => {
    const gen = toGenerateRequest(req.body.model, req.body, limits);
    return run(req, reply, gen, true, () => undefined);
  });

  // One route for both kinds of model (as in the product's API): a GGUF takes {prompt, ...}, an ONNX
  // model {inputs, ...}; which body applies depends on the model, so it is checked after the lookup.
  app.post(
    "/models/:id/inference",
    { schema: { params: modelIdParams, body: z.record(z.string(), z.unknown()) } },
    async (req, reply) => {
      const { capabilities } = await registry.capabilities(await registry.get(req.params.id));
      if (capabilities.includes("tensor-inference")) return tensorInference(registry, limits, req.params.id, parseBody(tensorBody, req.body), abortOnDisconnect(reply).signal);
      const body = parseBody(promptBody, req.body);
      return run(req, reply, toGenerateRequest(req.params.id, body, limits), body.stream === true, modelInferenceResponse);
    },
  );
};
