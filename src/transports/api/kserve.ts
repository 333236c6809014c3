import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { binaryInputs, binaryOutputNames, HEADER_LENGTH, kserveAnswer, splitBinaryBody } from "../../dialects/kserve-binary.js";
import { decodeKserveInputs, kserveInferBody, outputNames } from "../../dialects/tensor.js";
import { InfernoError } from "../../errors/catalogue.js";
import { readOwnedBody } from "../../http/owned-body.js";
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
  // The binary data extension: a request with Inference-Header-Content-Length (whatever its content type) is
  // split here; its JSON header goes on as the body, through the route's schema, and its tensor bytes wait
  // in `binaryTails` for the handler. Every other body is read as JSON, as on every route.
  const binaryTails = new WeakMap<FastifyRequest, Buffer>();
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("*");
  app.addContentTypeParser(["application/json", "*"], (request, payload, done) => {
    const length = request.headers[HEADER_LENGTH];
    // The tensor bytes follow the JSON header: the body is read so that they start aligned (owned-body.ts).
    const lead = typeof length === "string" && /^\d{1,15}$/.test(length) ? Number(length) : 0;
    readOwnedBody(request, payload, lead).then((body) => {
      if (length === undefined) return json(request, body.toString("utf8"), done);
      let header: Buffer;
      try {
        const split = splitBinaryBody(body, length);
        binaryTails.set(request, split.tail);
        header = split.header;
      } catch (err) {
        return done(err as Error, undefined);
      }
      json(request, header.toString("utf8"), (err, parsed) => {
        if (!err) return done(null, parsed);
        done(new InfernoError("INVALID_REQUEST", `the inference header (the body's first ${header.length} bytes, per Inference-Header-Content-Length) is not valid JSON`), undefined);
      });
    }, (err: Error) => done(err, undefined));
  });

  app.get("/health/live", { config: kserve }, async () => ({ live: true }));
  app.get("/health/ready", { config: kserve }, async () => ({ ready: true }));
  app.get("/", { config: kserve }, async () => ({ name: "inferno", version: VERSION, extensions: ["binary_tensor_data"] }));

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
      const body = req.body;
      const raw = binaryInputs(body.inputs, binaryTails.get(req));
      const model = await modelFor(req.params);
      const inputs = decodeKserveInputs(model, body, { maxElements: limits.maxTensorElements }, raw);
      const fetches = outputNames(model, body.outputs?.map((o) => o.name), "outputs");
      const binary = binaryOutputNames(body, fetches);
      const outputs = await runTensors(registry, req.params.name, model, inputs, fetches, abortOnDisconnect(reply).signal);
      const head = { model_name: req.params.name, model_version: "1", ...(body.id !== undefined ? { id: body.id } : {}) };
      const answer = kserveAnswer(head, outputs, binary);
      if ("json" in answer) return answer.json;
      return reply.type("application/octet-stream").header(HEADER_LENGTH, answer.headerLength).send(answer.body);
    });
  }
};
