// The GRPCInferenceService handlers: KServe v2 calls and Triton's streaming, repository and statistics
// calls, over the same services as the REST routes (src/services).
import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall } from "@grpc/grpc-js";
import { collectGeneration } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { kserveDatatype } from "../../runtimes/onnx/tensor-types.js";
import { startGeneration, textModel, type GenerationLimits } from "../../services/generation.js";
import { runTensors, tensorModel, type TensorLimits } from "../../services/tensors.js";
import { VERSION } from "../../version.js";
import { CallScope, type CallPolicy, type ScopeContext } from "../call-scope.js";
import { grpcSource } from "./grpc-call.js";
import type { GRPCInferenceServiceHandlers } from "./generated/inference/GRPCInferenceService.js";
import type { ModelInferRequest__Output } from "./generated/inference/ModelInferRequest.js";
import type { ModelInferResponse } from "./generated/inference/ModelInferResponse.js";
import type { ModelStreamInferResponse } from "./generated/inference/ModelStreamInferResponse.js";
import type { ModelStatistics } from "./generated/inference/ModelStatistics.js";
import type { ModelStats } from "./model-stats.js";
import { checkWellFormed } from "./malformed.js";
import { grpcStatus } from "./status.js";
import { decodeInputs, encodeOutputs, requestedOutputs } from "./tensors.js";
import { textInference, textResponse, toParameter, usageParameters } from "./text.js";

export interface ServiceOptions extends ScopeContext {
  registry: ModelRegistry;
  limits: GenerationLimits & TensorLimits;
  stats: ModelStats;
  /** Requests one ModelStreamInfer call may have running; the server stops reading the stream beyond. */
  maxStreamInFlight: number;
}

/** Dynamic dimensions are -1 in the protocol's metadata. */
const protocolShape = (shape: ReadonlyArray<number | string>) => shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1));

/** Every model has the one version "1"; an empty version means "the latest". */
function checkVersion(name: string, version: string): void {
  if (version !== "" && version !== "1") throw new InfernoError("MODEL_NOT_FOUND", `model '${name}' has no version '${version}' (only "1")`, { versions: ["1"] });
}

function requireName(name: string, field: string): string {
  if (name === "") throw new InfernoError("INVALID_REQUEST", `${field} is empty`, undefined, { param: field });
  return name;
}

export function inferenceService(opts: ServiceOptions): GRPCInferenceServiceHandlers {
  const { registry, limits, stats } = opts;

  /** A unary handler: the scope's checks, the work, then the answer or the coded status. */
  function unary<Req, Res>(method: string, policy: CallPolicy, work: (req: Req, scope: CallScope) => Promise<Res>, counted = true) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const serve = (scope: CallScope) => {
        const run = () => {
          checkWellFormed(call.request, `inference.${method}Request`);
          return work(call.request, scope);
        };
        (counted ? scope.limited(run) : scope.traced(run)).then(
          (res) => {
            scope.end();
            callback(null, res);
          },
          (err: unknown) => {
            const coded = scope.failure(err);
            scope.end(coded);
            callback(grpcStatus(coded));
          },
        );
      };
      CallScope.open(opts, grpcSource(call as never, method), policy).then(serve, (err: unknown) => callback(grpcStatus(err as InfernoError)));
    };
  }

  /** The model a request names, of either kind, with its type. */
  async function servedModel(name: string, version: string) {
    checkVersion(requireName(name, "model_name"), version);
    return registry.get(name);
  }

  /** One inference: an ONNX model's tensors or a GGUF model's text, whole. `onToken` streams a GGUF generation instead. */
  async function infer(req: ModelInferRequest__Output, scope: CallScope, onToken?: (response: ModelInferResponse) => Promise<void>): Promise<ModelInferResponse> {
    const name = req.model_name;
    const entry = await servedModel(name, req.model_version);
    scope.named(name);
    const base: ModelInferResponse = { model_name: name, model_version: "1", id: req.id };
    const started = performance.now();
    try {
      if (entry.type === "onnx") {
        const model = await tensorModel(registry, name);
        const inputs = decodeInputs(model, req, { maxElements: limits.maxTensorElements });
        const outputs = await runTensors(registry, name, model, inputs, requestedOutputs(model, req), scope.signal);
        return { ...base, ...encodeOutputs(outputs, req.raw_input_contents.length > 0) };
      }
      const { gen, stream, raw } = textInference(name, req, limits);
      if (stream && !onToken) {
        throw new InfernoError("INVALID_REQUEST", "parameter stream: true needs ModelStreamInfer (ModelInfer answers once)", undefined, { param: "parameters.stream" });
      }
      const generation = await startGeneration(registry, gen, scope.signal);
      if (!stream || !onToken) {
        const result = await collectGeneration(generation);
        scope.throwIfAborted();
        return textResponse({ ...base, parameters: { ...usageParameters(result), triton_final_response: toParameter(true) } }, result.text, raw);
      }
      for (;;) {
        const step = await generation.next();
        if (step.done) {
          scope.throwIfAborted();
          // Triton's last response of a decoupled request: no output, the final flag (and the usage).
          return { ...base, parameters: { ...usageParameters(step.value), triton_final_response: toParameter(true) } };
        }
        await onToken(textResponse({ ...base, parameters: { triton_final_response: toParameter(false) } }, step.value.text, raw));
      }
    } catch (err) {
      stats.failed(name, performance.now() - started);
      throw err;
    }
  }

  return {
    ServerLive: unary("ServerLive", "public", async () => ({ live: true }), false),
    ServerReady: unary("ServerReady", "public", async () => ({ ready: !opts.draining() }), false),
    ServerMetadata: unary("ServerMetadata", "user", async () => ({ name: "inferno", version: VERSION, extensions: [] }), false),
    ModelReady: unary("ModelReady", "user", async (req, scope) => {
      const entry = await servedModel(req.name, req.version);
      scope.named(req.name);
      // As on REST, readiness loads the model: it is ready when it can serve.
      if (entry.type === "onnx") await tensorModel(registry, req.name);
      else await textModel(registry, req.name);
      return { ready: true };
    }),
    ModelMetadata: unary("ModelMetadata", "user", async (req, scope) => {
      const entry = await servedModel(req.name, req.version);
      scope.named(req.name);
      if (entry.type !== "onnx") {
        return {
          name: req.name, versions: ["1"], platform: "llama.cpp",
          inputs: [{ name: "text_input", datatype: "BYTES", shape: [1] }],
          outputs: [{ name: "text_output", datatype: "BYTES", shape: [-1] }],
        };
      }
      const model = await tensorModel(registry, req.name);
      const meta = (t: { name: string; type: Parameters<typeof kserveDatatype>[0]; shape: ReadonlyArray<number | string> }) => ({
        name: t.name, datatype: kserveDatatype(t.type), shape: protocolShape(t.shape),
      });
      return { name: req.name, versions: ["1"], platform: "onnxruntime_onnx", inputs: model.inputs.map(meta), outputs: model.outputs.map(meta) };
    }),
    ModelInfer: unary("ModelInfer", "user", (req, scope) => infer(req, scope)),
    ModelStreamInfer: (call: ServerDuplexStream<ModelInferRequest__Output, ModelStreamInferResponse>) => streamInfer(call),
    ModelStatistics: unary("ModelStatistics", "user", async (req) => {
      const names = req.name === "" ? registry.list().map((m) => m.id) : [(await servedModel(req.name, req.version)).id];
      return { model_stats: names.map((n): ModelStatistics => stats.of(n)) };
    }),
    RepositoryIndex: unary("RepositoryIndex", "user", async (req) => {
      await registry.scan();
      const models = registry.list().map((m) => {
        const loaded = registry.getLoaded(m.id) !== undefined;
        return { name: m.id, version: "1", state: loaded ? "READY" : "UNAVAILABLE", reason: loaded ? "" : m.missing ? "model file missing" : "unloaded" };
      });
      return { models: req.ready ? models.filter((m) => m.state === "READY") : models };
    }),
    RepositoryModelLoad: unary("RepositoryModelLoad", "admin", async (req, scope) => {
      await servedModel(req.model_name, "");
      scope.named(req.model_name);
      await registry.load(req.model_name);
      scope.audit("model.load", req.model_name);
      return {};
    }),
    RepositoryModelUnload: unary("RepositoryModelUnload", "admin", async (req, scope) => {
      await servedModel(req.model_name, "");
      scope.named(req.model_name);
      const wasLoaded = await registry.unload(req.model_name);
      scope.audit("model.unload", req.model_name, { was_loaded: wasLoaded });
      return {};
    }),
  };

  /**
   * Triton's streaming call: every request on the stream is its own inference, run concurrently and
   * answered on the stream (responses carry the request's id). A failed request answers with
   * `error_message` ("CODE: message") and the stream goes on; cancelling the call stops them all.
   */
  function streamInfer(call: ServerDuplexStream<ModelInferRequest__Output, ModelStreamInferResponse>): void {
    let running = 0;
    let inputEnded = false;
    let closed = false;
    const finishIfDone = () => {
      if (inputEnded && running === 0 && !closed) {
        closed = true;
        call.end();
      }
    };
    /** Waits until the client has read what was written (the server does not buffer for a slow reader without bound). */
    let drained: Promise<void> | undefined;
    const send = (message: ModelStreamInferResponse): Promise<void> => {
      if (call.cancelled || closed) return Promise.resolve();
      if (call.write(message)) return Promise.resolve();
      // The stream's requests that wait to write share one wait for the call to drain (or be cancelled).
      drained ??= new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          call.off("cancelled", done);
          drained = undefined;
          resolve();
        };
        call.once("drain", done);
        call.once("cancelled", done);
      });
      return drained;
    };

    call.on("data", (req: ModelInferRequest__Output) => {
      // Counted from the start: the credential check may wait on Redis, and the stream must not end meanwhile.
      running++;
      if (running >= opts.maxStreamInFlight) call.pause();
      CallScope.open(opts, grpcSource(call as never, "ModelStreamInfer"), "user")
        .then(
          (scope) =>
            scope
              .limited(() => {
                checkWellFormed(req, "inference.ModelInferRequest");
                return infer(req, scope, (response) => send({ error_message: "", infer_response: response }));
              })
              .then(
                async (response) => {
                  scope.end();
                  await send({ error_message: "", infer_response: response });
                },
                async (err: unknown) => {
                  const coded = scope.failure(err);
                  scope.end(coded);
                  await send({ error_message: `${coded.code}: ${coded.message}`, infer_response: { model_name: req.model_name, model_version: "1", id: req.id } });
                },
              ),
          (err: unknown) => {
            // Refused before any work (credentials, drain): the whole call ends with the status. grpc-js ends a
            // server stream with the status of an 'error' it emits (destroy() would skip sending it).
            if (!closed) call.emit("error", Object.assign(new Error((err as InfernoError).message), grpcStatus(err as InfernoError)));
            closed = true;
          },
        )
        .finally(() => {
          running--;
          if (running < opts.maxStreamInFlight) call.resume();
          finishIfDone();
        });
    });
    call.on("end", () => {
      inputEnded = true;
      finishIfDone();
    });
    call.on("error", () => {});
  }
}
