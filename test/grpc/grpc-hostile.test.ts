// Hostile gRPC input: mutated ModelInferRequest bytes and adversarial but well-formed messages, on both
// unary and streaming calls. Every call must end with a status (or a stream error_message), never a
// crash or a hang, and the server must serve normally afterwards.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loadPackageDefinition, status, type ServiceError } from "@grpc/grpc-js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierOnnx, typesZooOnnx } from "../fixtures/onnx-writer.js";
import { prng } from "../fixtures/prng.js";
import { call, callError, inferenceClient, type InferenceClient } from "../helpers/grpc-client.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { loadInferenceProto } from "../../src/transports/grpc/grpc-plugin.js";
import type { ProtoGrpcType } from "../../src/transports/grpc/generated/inference.js";

let srv: TestServer;
let client: InferenceClient;
const proto = loadPackageDefinition(loadInferenceProto()) as unknown as ProtoGrpcType;
const encode = (msg: object) => (proto.inference.GRPCInferenceService.service.ModelInfer.requestSerialize as (m: object) => Buffer)(msg);
const valid = { model_name: "lin", inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] };

before(async () => {
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "zoo.onnx": typesZooOnnx(), "tiny.gguf": buildTinyLlamaGguf() },
    config: { maxTensorElements: 10_000 },
  });
  client = inferenceClient(srv.grpcAddress!);
});
after(async () => {
  client.close();
  await srv.cleanup();
});

/** Sends bytes as a ModelInfer request; resolves with the call's status code (OK = 0). */
const sendRaw = (bytes: Buffer) =>
  new Promise<number>((resolve) => {
    client.makeUnaryRequest("/inference.GRPCInferenceService/ModelInfer", (b: Buffer) => b, (b: Buffer) => b, bytes, { deadline: Date.now() + 15_000 }, (err) =>
      resolve(err ? (err as ServiceError).code : status.OK),
    );
  });

test("300 mutated ModelInferRequest messages each end with a status; the server goes on serving", async () => {
  const random = prng(15);
  const base = encode(valid);
  const codes = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const bytes = Buffer.from(base);
    const edits = 1 + Math.floor(random() * 4);
    for (let e = 0; e < edits; e++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    const cut = random() < 0.2 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
    const code = await sendRaw(cut);
    assert.notEqual(code, status.DEADLINE_EXCEEDED, `mutation ${i} hung`);
    assert.notEqual(code, status.UNKNOWN, `mutation ${i}`);
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  assert.ok(codes.get(status.INVALID_ARGUMENT)! > 0, JSON.stringify([...codes]));
  assert.ok(await call(client, "ModelInfer", valid));
});

test("adversarial messages: shapes, counts, bytes, settings each get a coded refusal", async () => {
  const text = (extra: object) => ({
    model_name: "tiny", inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("hi")] } }], ...extra,
  });
  const cases: Array<[string, object, number]> = [
    ["shape of 2^62 rows", { ...valid, inputs: [{ ...valid.inputs[0], shape: ["4611686018427387904", 4] }] }, status.INVALID_ARGUMENT],
    ["rank 9", { ...valid, inputs: [{ ...valid.inputs[0], shape: [1, 1, 1, 1, 1, 1, 1, 1, 4] }] }, status.INVALID_ARGUMENT],
    ["10,000 floats for 4", { ...valid, inputs: [{ ...valid.inputs[0], contents: { fp32_contents: new Array(10_000).fill(1) } }] }, status.INVALID_ARGUMENT],
    ["elements over the limit", { ...valid, inputs: [{ ...valid.inputs[0], shape: [20_000, 4] }] }, status.RESOURCE_EXHAUSTED],
    ["input twice", { ...valid, inputs: [valid.inputs[0], valid.inputs[0]] }, status.INVALID_ARGUMENT],
    ["empty model name", { ...valid, model_name: "" }, status.INVALID_ARGUMENT],
    ["path-like model name", { ...valid, model_name: "../../etc/passwd" }, status.NOT_FOUND],
    ["raw BYTES length past the end", {
      model_name: "tiny", inputs: [{ name: "text_input", datatype: "BYTES", shape: [1] }], raw_input_contents: [Buffer.from([0xff, 0xff, 0xff, 0x7f, 0x41])],
    }, status.INVALID_ARGUMENT],
    ["prompt not UTF-8", text({ inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from([0xc3, 0x28])] } }] }), status.INVALID_ARGUMENT],
    ["two prompts", text({ inputs: [{ name: "text_input", datatype: "BYTES", shape: [2], contents: { bytes_contents: [Buffer.from("a"), Buffer.from("b")] } }] }), status.INVALID_ARGUMENT],
    ["no prompt", { model_name: "tiny", inputs: [] }, status.INVALID_ARGUMENT],
    ["max_tokens over the limit", text({ parameters: { max_tokens: { int64_param: "9223372036854775807" } } }), status.INVALID_ARGUMENT],
    ["max_tokens a string", text({ parameters: { max_tokens: { string_param: "lots" } } }), status.INVALID_ARGUMENT],
    ["stop not a list", text({ parameters: { stop: { string_param: "[1, 2" } } }), status.INVALID_ARGUMENT],
    ["unknown input on a GGUF model", text({ inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("hi")] } }, { name: "evil", datatype: "FP32", shape: [1] }] }), status.INVALID_ARGUMENT],
    ["stream on ModelInfer", text({ parameters: { stream: { bool_param: true } } }), status.INVALID_ARGUMENT],
  ];
  for (const [what, req, code] of cases) {
    const err = await callError(call(client, "ModelInfer", req));
    assert.equal(err.code, code, `${what}: ${err.details}`);
    assert.match(err.details, /^[A-Z_]+: /, what);
  }
});

test("a stream of bad requests answers each with error_message and stays open for good ones", async () => {
  const stream = client.ModelStreamInfer();
  const answers: any[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    stream.on("data", (m: any) => answers.push(m));
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  stream.write({ model_name: "nope", id: "1" });
  stream.write({ ...valid, id: "2", inputs: [{ ...valid.inputs[0], shape: [1, 5] }] });
  stream.write({ ...valid, id: "3" });
  stream.end();
  await ended;
  const byId = Object.fromEntries(answers.map((a) => [a.infer_response.id, a]));
  assert.match(byId["1"].error_message, /^MODEL_NOT_FOUND: /);
  assert.match(byId["2"].error_message, /^INVALID_REQUEST: /);
  assert.equal(byId["3"].error_message, "");
  assert.equal(byId["3"].infer_response.outputs[0].name, "probs");
});
