// What each IPC op does, on the same services as every other transport.
import { collectGeneration, type GenerationResult, type GenerationStream } from "../../core/generation.js";
import { embeddingInputs } from "../../dialects/embedding-input.js";
import { generateRequest, ipcOps, ipcOut, IPC_PROTOCOL_VERSION, type IpcOp } from "../../dialects/ipc.js";
import { decodeKserveInputs, outputNames } from "../../dialects/tensor.js";
import { parseBody } from "../../errors/error-handler.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { encodeRawTensor } from "../../runtimes/onnx/tensor-codec.js";
import { startChat } from "../../services/chat.js";
import { embed } from "../../services/embeddings.js";
import { startGeneration, type GenerationLimits } from "../../services/generation.js";
import { runTensors, tensorModel, type TensorLimits } from "../../services/tensors.js";
import { VERSION } from "../../version.js";
import { describeModel } from "../../dialects/model-description.js";
import type { CallPolicy, CallScope } from "../call-scope.js";

export interface OpContext {
  registry: ModelRegistry;
  limits: GenerationLimits & TensorLimits;
  /** Sends a frame; resolves once the socket has taken it (the writer waits while it is full). */
  send(frame: object): Promise<void>;
}

/** Who may run each op (hello and cancel are handled by the connection itself). */
export const OP_POLICY: Record<Exclude<IpcOp, "hello" | "cancel">, CallPolicy> = {
  health: "public",
  models: "user",
  infer: "user",
  generate: "user",
  embed: "user",
  load: "admin",
  unload: "admin",
};

/** The model a request names, for metrics and traces. */
export const modelOf = (request: Record<string, unknown>): string | undefined => (typeof request.model === "string" ? request.model : undefined);

/** Runs one op; resolves with the final frame (a result, or a stream's done event) after any token frames. */
export async function runOp(op: Exclude<IpcOp, "hello" | "cancel">, id: number, request: Record<string, unknown>, scope: CallScope, ctx: OpContext): Promise<object> {
  const { registry, limits } = ctx;
  switch (op) {
    case "health":
      return ipcOut.result(id, { status: "healthy", version: VERSION, protocol: IPC_PROTOCOL_VERSION, models_loaded: registry.loadedModels().length });
    case "models": {
      await registry.scan();
      return ipcOut.result(id, { models: await Promise.all(registry.list().map((m) => describeModel(registry, m))) });
    }
    case "infer": {
      const body = parseBody(ipcOps.infer, request);
      const model = await tensorModel(registry, body.model);
      // Raw bytes (bin) go through the raw codec; a BYTES tensor may also come as a list of strings, read as KServe data.
      const entries = Object.entries(body.inputs);
      const raw = new Map(entries.flatMap(([name, t]) => (t.data instanceof Uint8Array ? [[name, t.data] as const] : [])));
      const tensors = entries.map(([name, t]) => ({ name, datatype: t.datatype, shape: t.shape, data: t.data instanceof Uint8Array ? undefined : t.data }));
      const inputs = decodeKserveInputs(model, { inputs: tensors }, { maxElements: limits.maxTensorElements }, raw);
      const outputs = await runTensors(registry, body.model, model, inputs, outputNames(model, body.outputs, "outputs"), scope.signal);
      return ipcOut.result(id, {
        model: body.model,
        outputs: Object.fromEntries(Object.entries(outputs).map(([name, t]) => {
          const raw = encodeRawTensor(t);
          return [name, { datatype: raw.datatype, shape: raw.shape, data: raw.datatype === "BYTES" ? Array.from(t.data as ArrayLike<string>) : raw.bytes }];
        })),
      });
    }
    case "generate": {
      const body = parseBody(ipcOps.generate, request);
      const req = generateRequest(body, limits);
      const stream: GenerationStream = req.messages
        ? (await startChat(registry, { ...req, messages: req.messages }, scope.signal)).stream
        : await startGeneration(registry, req, scope.signal);
      if (body.stream !== true) {
        const whole = await collectGeneration(stream);
        scope.throwIfAborted();
        return ipcOut.generated(id, whole, scope.cancelled);
      }
      let result: GenerationResult;
      for (;;) {
        const step = await stream.next();
        if (step.done) {
          result = step.value;
          break;
        }
        await ctx.send(ipcOut.token(id, step.value.text));
      }
      scope.throwIfAborted();
      return ipcOut.done(id, result, scope.cancelled);
    }
    case "embed": {
      const body = parseBody(ipcOps.embed, request);
      const out = await embed(registry, {
        model: body.model, inputs: embeddingInputs(body.input), truncate: body.truncate ?? false, dimensions: body.dimensions, normalize: body.normalize ?? true,
      }, scope.signal);
      return ipcOut.result(id, {
        model: body.model,
        // Each vector as little-endian float32 bytes: no per-number encoding on either side.
        embeddings: out.vectors.map((v) => new Uint8Array(new Float32Array(v).buffer)),
        dimensions: out.vectors[0]?.length ?? 0,
        usage: { prompt_tokens: out.promptTokens, total_tokens: out.promptTokens },
      });
    }
    case "load": {
      const body = parseBody(ipcOps.load, request);
      await registry.get(body.model);
      const model = await registry.load(body.model);
      scope.audit("model.load", body.model);
      return ipcOut.result(id, { model: body.model, status: "loaded", load_time_ms: Math.round(model.loadTimeMs) });
    }
    case "unload": {
      const body = parseBody(ipcOps.unload, request);
      await registry.get(body.model);
      const wasLoaded = await registry.unload(body.model);
      scope.audit("model.unload", body.model, { was_loaded: wasLoaded });
      return ipcOut.result(id, { model: body.model, status: "unloaded", was_loaded: wasLoaded });
    }
  }
}
