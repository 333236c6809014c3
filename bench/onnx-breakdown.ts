// Where Inferno's per-request time goes, stage by stage, each timed alone on this thread with Inferno's own
// functions: the HTTP round trip of the same bytes, Fastify's JSON body parser, Inferno's body schema and tensor
// decode, the worker-thread hop, and the output encoding. What the stages don't add up to is the rest of the
// request path (routing, hooks, route schemas, registry lookup, abort wiring) plus effects of running them together.
import Fastify from "fastify";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { decodeKserveInputs, decodeNativeInputs, kserveInferBody, kserveOutputs, nativeOutputs, tensorBody } from "../src/dialects/tensor.js";
import type { OnnxModel, TensorMap } from "../src/runtimes/onnx/onnx-model.js";
import { SessionClient } from "../src/runtimes/onnx/session-client.js";
import type { TensorSpec } from "../src/runtimes/onnx/tensor-codec.js";
import type { BenchModel, InputForm, PreparedRequest } from "./onnx-inputs.js";
import { httpPost, keepAliveAgent } from "./onnx-http.js";
import { machineBusyMs } from "./onnx-machine.js";
import { sessionOptions } from "./onnx-raw.js";
import { median } from "./stats.js";

/** Medians in microseconds of each stage for one input form. */
export interface StageCosts {
  form: InputForm;
  /** fetch → bare Fastify route that neither parses the body nor computes, answering Inferno's response bytes → body read. */
  httpFloorUs: number;
  /** The same round trip with node:http and a keep-alive agent instead of fetch. */
  httpFloorNodeUs: number;
  /** Fastify's default JSON body parser (secure-json-parse) on the request text, as Inferno's content-type parser runs it. */
  jsonParseUs: number;
  /** Inferno's zod body schema and tensor decode (validation included) into a typed array. */
  decodeUs: number;
  /** Output tensor → JSON response text (encodeTensor / KServe encoding, then JSON.stringify). */
  encodeUs: number;
  /** The whole Inferno request through `app.inject` (no socket, no fetch), session.run in the worker included. */
  infernoInjectUs: number;
  /** The bare route through `app.inject`: what inject and a minimal Fastify request cost by themselves. */
  floorInjectUs: number;
}

export interface Breakdown {
  model: string;
  samples: number;
  /** SessionClient.run (postMessage, transfer, ort.Tensor in the worker, reply) minus the worker's own session.run time. */
  workerHopUs: number;
  /** session.run timed inside the worker. */
  workerRunUs: number;
  /** CPU that other processes on the machine used meanwhile, % of one core (null off Linux). */
  otherCpuPct: number | null;
  stages: StageCosts[];
}

/** Median microseconds of `fn` over `n` calls, after a few untimed ones. */
async function medianUs(n: number, fn: () => unknown): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n + Math.min(10, n); i++) {
    const started = performance.now();
    const r = fn();
    if (r instanceof Promise) await r;
    if (i >= Math.min(10, n)) samples.push((performance.now() - started) * 1000);
  }
  return median(samples);
}

/** A bare Fastify app on loopback whose one route answers fixed bytes and leaves the request body unparsed. */
async function startFloor() {
  const app = Fastify({ logger: false, bodyLimit: 1 << 30 });
  let response = "{}";
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  app.post("/floor", (_req, reply) => reply.type("application/json; charset=utf-8").send(response));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/floor`;
  const parse = app.getDefaultJsonParser("error", "error");
  return {
    url,
    app,
    setResponse: (text: string) => (response = text),
    /** Fastify's default JSON parser (the one Inferno's catch-all content-type parser calls). */
    parseJson: (text: string): unknown => {
      let out: unknown;
      parse({} as FastifyRequest, text, (err, body) => {
        if (err) throw err;
        out = body;
      });
      return out;
    },
    close: () => app.close(),
  };
}

async function post(url: string, body: Buffer): Promise<string> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  return text;
}

export async function breakdown(opts: {
  model: BenchModel;
  file: string;
  threads: number;
  /** The model's input spec as Inferno reports it (dynamic dims by name). */
  spec: TensorSpec;
  serverUrl: string;
  /** The same server's app, for requests through `inject` (no socket). */
  app: FastifyInstance;
  requests: PreparedRequest[];
  input: Float32Array;
  samples: number;
}): Promise<Breakdown> {
  const { model, spec, samples } = opts;
  const limits = { maxElements: 1 << 24 };
  // decodeNativeInputs and decodeKserveInputs read only the model's input specs.
  const asModel = { inputs: [spec] } as unknown as OnnxModel;

  const started = { at: performance.now(), cpu: process.cpuUsage(), busy: machineBusyMs() };
  const session = await SessionClient.open(opts.file, sessionOptions(opts.threads) as Record<string, unknown>);
  let outputs: TensorMap | undefined;
  const hops: number[] = [];
  const runs: number[] = [];
  try {
    for (let i = 0; i < samples + 10; i++) {
      const data = opts.input.slice(); // its buffer is transferred to the worker
      const started = performance.now();
      const r = await session.client.run({ [model.input]: { type: "float32", dims: [...model.dims], data } }, [model.output]);
      const total = performance.now() - started;
      outputs = r.outputs;
      if (i >= 10) {
        hops.push((total - r.runMs) * 1000);
        runs.push(r.runMs * 1000);
      }
    }
  } finally {
    await session.client.dispose();
  }
  const out = outputs!;

  const floor = await startFloor();
  const stages: StageCosts[] = [];
  try {
    for (const req of opts.requests) {
      const text = req.body.toString();
      floor.setResponse(await post(`${opts.serverUrl}${req.path}`, req.body));
      const httpFloorUs = await medianUs(samples, () => post(floor.url, req.body));
      const agent = keepAliveAgent(1);
      const httpFloorNodeUs = await medianUs(samples, () => httpPost(agent, floor.url, req.body));
      agent.destroy();
      const jsonParseUs = await medianUs(samples, () => floor.parseJson(text));
      const parsed = floor.parseJson(text);
      const decodeUs =
        req.form === "kserve"
          ? await medianUs(samples, () => decodeKserveInputs(asModel, kserveInferBody.parse(parsed), limits))
          : await medianUs(samples, () => decodeNativeInputs(asModel, tensorBody.parse(parsed), limits));
      const encodeUs =
        req.form === "kserve"
          ? await medianUs(samples, () => JSON.stringify({ model_name: model.name, model_version: "1", outputs: kserveOutputs(out) }))
          : await medianUs(samples, () => JSON.stringify({ model: model.name, outputs: nativeOutputs(out, "nested"), latency_ms: 1.234 }));
      const inject = (app: FastifyInstance, url: string) => async () => {
        const res = await app.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload: req.body });
        if (res.statusCode !== 200) throw new Error(`inject ${url}: HTTP ${res.statusCode}: ${res.body.slice(0, 200)}`);
      };
      const infernoInjectUs = await medianUs(samples, inject(opts.app, req.path));
      const floorInjectUs = await medianUs(samples, inject(floor.app, "/floor"));
      stages.push({ form: req.form, httpFloorUs, httpFloorNodeUs, jsonParseUs, decodeUs, encodeUs, infernoInjectUs, floorInjectUs });
    }
  } finally {
    await floor.close();
  }
  const used = process.cpuUsage(started.cpu);
  const busy = machineBusyMs();
  const otherCpuPct =
    started.busy === null || busy === null
      ? null
      : ((busy - started.busy - (used.user + used.system) / 1000) / (performance.now() - started.at)) * 100;
  return { model: model.name, samples, workerHopUs: median(hops), workerRunUs: median(runs), otherCpuPct, stages };
}
