import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { decodeKserveInputs, kserveInferBody, kserveOutputs, outputNames } from "../../dialects/tensor.js";
import { InfernoError } from "../../errors/catalogue.js";
import { abortOnDisconnect } from "../../http/sse.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { kserveDatatype } from "../../runtimes/onnx/tensor-types.js";
import { VERSION } from "../../version.js";
import { runTensors, tensorModel, type TensorLimits } from "../../services/tensors.js";

const kserve = { dialect: "kserve" as const };
const modelParams = z.object({ name: z.string().min(1).max(256), version: z.string().max(64).optional() });
/** Dynamic dimensions are -1 in the protocol's metadata. */
const protocolShape = (shape: ReadonlyArray<number | string>) => shape.map((d) => (typeof d === "number" ? d : -1));

/**
 * The Open Inference Protocol (KServe v2) over REST, for tensor models. Models have one version, "1";
 * a version in the path is accepted and must be "1". Readiness loads the model: a model is ready when
 * it can serve, and models load on first use.
 */
export const kserveRoutes: FastifyPluginAsyncZod<{ registry: ModelRegistry; limits: TensorLimits }> = async (app, { registry, limits }) => {
  app.get("/health/live", { config: kserve }, async () => ({ live: true }));
  app.get("/health/ready", { config: kserve }, async () => ({ ready: true }));
  app.get("/", { config: kserve }, async () => ({ name: "inferno", version: VERSION, extensions: [] }));

  /** The tensor model behind a name and optional version (every model has the one version "1"). */
  const modelFor = async (params: z.infer<typeof modelParams>) => {
    if (params.version !== undefined && params.version !== "1") {
      throw new InfernoError("MODEL_NOT_FOUND", `model '${params.name}' has no version '${params.version}' (only "1")`, { versions: ["1"] });
    }
    return tensorModel(registry, params.name);
  };

  const metadata = async (params: z.infer<typeof modelParams>) => {
    const name = params.name;
    const model = await modelFor(params);
    return {
      name,
      versions: ["1"],
      platform: "onnxruntime_onnx",
      inputs: model.inputs.map((t) => ({ name: t.name, datatype: kserveDatatype(t.type), shape: protocolShape(t.shape) })),
      outputs: model.outputs.map((t) => ({ name: t.name, datatype: kserveDatatype(t.type), shape: protocolShape(t.shape) })),
    };
  };
  for (const path of ["/models/:name", "/models/:name/versions/:version"]) {
    app.get(path, { schema: { params: modelParams }, config: kserve }, async (req) => metadata(req.params));
    app.get(`${path}/ready`, { schema: { params: modelParams }, config: kserve }, async (req) => {
      await modelFor(req.params);
      return { name: req.params.name, ready: true };
    });
    app.post(`${path}/infer`, { schema: { params: modelParams, body: kserveInferBody }, config: kserve }, async (req, reply) => {
      const model = await modelFor(req.params);
      const body = req.body;
      const inputs = decodeKserveInputs(model, body, { maxElements: limits.maxTensorElements });
      const fetches = outputNames(model, body.outputs?.map((o) => o.name), "outputs");
      const outputs = await runTensors(registry, req.params.name, model, inputs, fetches, abortOnDisconnect(reply).signal);
      return {
        model_name: req.params.name,
        model_version: "1",
        ...(body.id !== undefined ? { id: body.id } : {}),
        outputs: kserveOutputs(outputs),
      };
    });
  }
};
