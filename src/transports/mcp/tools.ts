// The MCP tools: each takes the body its REST route validates (same zod schema, so the same bounds and
// messages) and calls the service that route calls. Text for the agent, the route's JSON as structuredContent.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { GenerationStream } from "../../core/generation.js";
import { describeModel, memoryFields } from "../../dialects/model-description.js";
import { inferenceBody, inferenceResponse, toGenerateRequest } from "../../dialects/native.js";
import { chatCompletionBody, toChatRequest } from "../../dialects/openai/chat.js";
import { outcomeOf } from "../../dialects/openai/chat-response.js";
import { toolCallsOut } from "../../dialects/openai/chat.js";
import { embeddingInputs } from "../../dialects/embedding-input.js";
import { createRerank, rerankBody } from "../../dialects/rerank.js";
import { tensorBody } from "../../dialects/tensor.js";
import { embeddingToBase64 } from "../../dialects/embedding-input.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { batchResults, batchStatus, submitBatch, visibleBatch, type BatchDeps } from "../../services/batches.js";
import { startChat } from "../../services/chat.js";
import { embed } from "../../services/embeddings.js";
import { startGeneration, type GenerationLimits } from "../../services/generation.js";
import { tensorInference, type TensorLimits } from "../../services/tensors.js";
import { batchBody } from "../api/batch.js";
import { embeddingsBody } from "../api/embeddings.js";
import { loadOptionsSchema } from "../api/models.js";
import { defineTool, type McpTool, type ToolCall } from "./tool-call.js";

export interface ToolDeps {
  registry: ModelRegistry;
  limits: GenerationLimits & TensorLimits;
  /** Where batches live; the batch tools are offered only with it. */
  batches: BatchDeps | undefined;
}

const json = (v: unknown) => JSON.stringify(v, null, 2);
const modelArg = z.object({ model: z.string().min(1).max(256) });

/**
 * Reads a generation to its end, sending each token as a progress notification when the client asked for
 * them. The stream is returned in every case, so a cancelled call frees its sequence at once; a stop
 * for a coded reason (time limit, drain) is the call's answer rather than the text so far.
 */
async function readAll(stream: GenerationStream, call: ToolCall, total: number) {
  let text = "";
  let count = 0;
  try {
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        const reason = call.signal.reason as unknown;
        if (call.signal.aborted && reason instanceof InfernoError) throw reason;
        return { text, result: step.value };
      }
      text += step.value.text;
      count++;
      // A client that left cannot be told; the abort stops the generation.
      await call.progress?.({ progress: count, total, message: step.value.text }).catch(() => {});
    }
  } finally {
    await stream.return(undefined as never).catch(() => {});
  }
}

export function mcpTools({ registry, limits, batches }: ToolDeps): McpTool[] {
  const tools: McpTool[] = [
    defineTool({
      name: "list_models",
      title: "List models",
      description: "Every model this server serves: id, type (gguf or onnx), capabilities (text-generation, embeddings, reranking, tensor-inference), whether it is loaded, its context size and memory.",
      role: "user",
      readOnly: true,
      input: z.object({}),
      async run() {
        await registry.scan();
        const models = await Promise.all(registry.list().map((m) => describeModel(registry, m)));
        const lines = models.map((m) => `${m.id} (${m.type}${m.loaded ? ", loaded" : ""}): ${m.capabilities.join(", ") || "no capability"}`);
        return { text: lines.join("\n") || "no models", structured: { models } };
      },
    }),
    defineTool({
      name: "generate",
      title: "Generate text",
      description: "Completes a prompt with a text-generation model (as POST /inference). With a progressToken, each token comes as a progress notification (its text in `message`); cancelling the request stops generation.",
      role: "user",
      input: inferenceBody.omit({ stream: true }),
      async run(args, call) {
        const req = toGenerateRequest(args.model, args, limits);
        const { result } = await readAll(await startGeneration(registry, req, call.signal), call, req.maxTokens);
        return { text: result.text, structured: inferenceResponse(`inf_${randomBytes(9).toString("base64url")}`, args.model, result) };
      },
    }),
    defineTool({
      name: "chat",
      title: "Chat",
      description: "Answers a conversation with the model's chat template (the body of POST /v1/chat/completions, one choice). Progress notifications carry tokens as for generate.",
      role: "user",
      input: chatCompletionBody.omit({ stream: true, stream_options: true, n: true }),
      async run(args, call) {
        const req = toChatRequest(args, limits);
        const gen = await startChat(registry, req, call.signal);
        const { text, result } = await readAll(gen.stream, call, req.maxTokens);
        const outcome = outcomeOf(gen, text, result);
        const message = { role: "assistant", content: outcome.content, ...(outcome.calls.length ? { tool_calls: toolCallsOut(outcome.calls) } : {}) };
        const usage = { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens };
        return { text: outcome.content ?? json(message.tool_calls), structured: { model: args.model, message, finish_reason: outcome.finishReason, usage } };
      },
    }),
    defineTool({
      name: "embed",
      title: "Embed texts",
      description: "Embedding vectors for texts (or token ids), as POST /embeddings; needs a model with the embeddings capability.",
      role: "user",
      readOnly: true,
      input: embeddingsBody,
      async run(args, call) {
        const { model, input, encoding_format, dimensions, normalize, truncate } = args;
        const { vectors, promptTokens } = await embed(registry, { model, inputs: embeddingInputs(input), dimensions, normalize, truncate }, call.signal);
        const data = vectors.map((v, index) => ({ embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index }));
        const usage = { prompt_tokens: promptTokens, total_tokens: promptTokens };
        return { text: `${vectors.length} vector(s) of ${vectors[0]?.length ?? 0} dimensions`, structured: { model, data, usage } };
      },
    }),
    defineTool({
      name: "rerank",
      title: "Rerank documents",
      description: "Orders documents by relevance to a query, as POST /v1/rerank; needs a model with the reranking capability.",
      role: "user",
      readOnly: true,
      input: rerankBody,
      async run(args, call) {
        const answer = await createRerank(registry, args, call.signal);
        return { text: answer.results.map((r) => `#${r.index}: ${r.relevance_score.toFixed(4)}`).join("\n"), structured: answer };
      },
    }),
    defineTool({
      name: "infer_tensor",
      title: "Run a tensor model",
      description: "Runs an ONNX model on named input tensors (nested arrays, or {data_b64, shape, dtype}), as POST /models/{id}/inference.",
      role: "user",
      readOnly: true,
      input: tensorBody.extend(modelArg.shape),
      async run({ model, ...body }, call) {
        const answer = await tensorInference(registry, limits, model, body, call.signal);
        return { text: json(answer.outputs), structured: answer };
      },
    }),
    defineTool({
      name: "load_model",
      title: "Load a model",
      description: "Loads a model into memory with load options (admin), as POST /models/{id}/load.",
      role: "admin",
      input: modelArg.extend({ options: loadOptionsSchema.optional() }),
      async run({ model, options }, call) {
        const loaded = await registry.load(model, options ?? {});
        call.audit("model.load", model, { options: options ?? {} });
        const answer = { status: "loaded", model_id: model, ...memoryFields(loaded), load_time_ms: Math.round(loaded.loadTimeMs), context_size: loaded.contextSize };
        return { text: `loaded ${model}`, structured: answer };
      },
    }),
    defineTool({
      name: "unload_model",
      title: "Unload a model",
      description: "Frees a loaded model's memory (admin), as POST /models/{id}/unload.",
      role: "admin",
      input: modelArg,
      async run({ model }, call) {
        await registry.get(model);
        const wasLoaded = await registry.unload(model);
        call.audit("model.unload", model, { was_loaded: wasLoaded });
        return { text: wasLoaded ? `unloaded ${model}` : `${model} was not loaded`, structured: { status: "unloaded", model_id: model, was_loaded: wasLoaded } };
      },
    }),
  ];
  if (batches) tools.push(...batchTools(batches));
  return tools;
}

function batchTools(deps: BatchDeps): McpTool[] {
  return [
    defineTool({
      name: "submit_batch",
      title: "Submit a batch",
      description: "Queues prompts to run in the background (the body of POST /batch); answers the batch id at once. Poll with get_batch.",
      role: "user",
      input: batchBody,
      async run(args, call) {
        const { model, requests, webhook_url, webhook_secret, ...params } = args;
        const submitted = await submitBatch(deps, { model, requests, params, webhookUrl: webhook_url, webhookSecret: webhook_secret }, {
          owner: call.principal.user, usageKey: call.usageKey,
        });
        return { text: `batch ${submitted.batch_id}: ${submitted.status}, ${submitted.total_requests} request(s)`, structured: submitted };
      },
    }),
    defineTool({
      name: "get_batch",
      title: "Query a batch",
      description: "A batch's status and counts; with results: true, each item's outcome so far (as GET /batch/{id}/results).",
      role: "user",
      readOnly: true,
      input: z.object({ batch_id: z.string().min(1).max(64), results: z.boolean().default(false) }),
      async run({ batch_id, results }, call) {
        const batch = await visibleBatch(deps.backend, call.principal, batch_id);
        const status = await batchStatus(deps.backend, batch);
        const items = results ? (await batchResults(deps.backend, batch)).results : undefined;
        const text = `batch ${status.batch_id}: ${status.status}, ${status.completed} completed, ${status.failed} failed, ${status.pending} pending`;
        return { text, structured: { ...status, ...(items ? { results: items } : {}) } };
      },
    }),
  ];
}
