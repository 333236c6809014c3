import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod, ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { collectGeneration, type GenerateRequest } from "../../core/generation.js";
import {
  inferenceBody, inferenceResponse, modelInferenceResponse, nativeSse, promptBody, toGenerateRequest, type GenerationLimits,
} from "../../dialects/native.js";
import { parseShapeParam, rawTensorQuery, tensorBody } from "../../dialects/tensor.js";
import { InfernoError } from "../../errors/catalogue.js";
import { errorBody, parseBody } from "../../errors/error-handler.js";
import { mapGeneration } from "../../core/stream-utils.js";
import { readOwnedBody } from "../../http/owned-body.js";
import { abortOnDisconnect, sendSse } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startGeneration } from "../../services/generation.js";
import { tensorInference, type TensorLimits } from "../../services/tensors.js";
import { modelIdParams } from "../../http/params.js";

/** A JSON object (checked against the model's kind of body later), or the bytes of an application/octet-stream body. */
const modelInferenceBody = z.union([z.instanceof(Buffer), z.record(z.string(), z.unknown())], {
  error: "expected a JSON object, or one raw tensor as an application/octet-stream body",
});

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
  // model {inputs, ...} or one raw tensor; which body applies depends on the model, so it is checked after the lookup.
  await app.register(async (scope) => {
    const raw = scope.withTypeProvider<ZodTypeProvider>();
    // This route reads application/octet-stream bodies as bytes; the other native routes keep reading them as JSON.
    raw.addContentTypeParser("application/octet-stream", (request, payload, done) => {
      readOwnedBody(request, payload, 0).then((body) => done(null, body), (err: Error) => done(err, undefined));
    });
    raw.post(
      "/models/:id/inference",
      { schema: { params: modelIdParams, querystring: rawTensorQuery, body: modelInferenceBody } },
      async (req, reply) => {
        const { id } = req.params;
        const { capabilities } = await registry.capabilities(await registry.get(id));
        const bytes = Buffer.isBuffer(req.body) ? req.body : undefined;
        if (!bytes && (req.query.shape !== undefined || req.query.dtype !== undefined)) {
          throw new InfernoError("INVALID_REQUEST", "the shape and dtype query parameters are for an application/octet-stream body", {}, { param: "shape" });
        }
        if (capabilities.includes("tensor-inference")) {
          const body = bytes ? { raw: { bytes, shape: parseShapeParam(req.query.shape), dtype: req.query.dtype } } : parseBody(tensorBody, req.body);
          return tensorInference(registry, limits, id, body, abortOnDisconnect(reply).signal);
        }
        if (bytes) {
          throw new InfernoError("UNSUPPORTED_MEDIA_TYPE", `model '${id}' takes a JSON body ({"prompt": ...}), not application/octet-stream`, {
            expected: "application/json",
          });
        }
        const body = parseBody(promptBody, req.body);
        return run(req, reply, toGenerateRequest(id, body, limits), body.stream === true, modelInferenceResponse);
      },
    );
  });
};
