// The gRPC transport through a real @grpc/grpc-js client over TCP: KServe v2 calls, Triton's streaming and
// repository calls, on generated ONNX fixtures and the real stories260K model.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { linearClassifierForward, linearClassifierOnnx, linearClassifierWeights, rawPairOnnx, typesZooOnnx } from "../fixtures/onnx-writer.js";
import { call, callError, inferenceClient, rawBytes, readRawBytes, type InferenceClient } from "../helpers/grpc-client.js";
import { realModel } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
let srv: TestServer;
let client: InferenceClient;
const W = linearClassifierWeights();
const rows = [[0.5, -1, 2, 0.25], [1, 1, 1, 1]];

before(async () => {
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "zoo.onnx": typesZooOnnx(), "pair.onnx": rawPairOnnx() },
    models: stories.skip ? {} : { stories: stories.path },
    config: { maxTensorElements: 100_000 },
  });
  client = inferenceClient(srv.grpcAddress!);
});
after(async () => {
  client.close();
  await srv.cleanup();
});

test("health and metadata calls answer as KServe v2 says", async () => {
  assert.deepEqual(await call(client, "ServerLive", {}), { live: true });
  assert.deepEqual(await call(client, "ServerReady", {}), { ready: true });
  const meta: any = await call(client, "ServerMetadata", {});
  assert.equal(meta.name, "inferno");
  assert.deepEqual(await call(client, "ModelReady", { name: "lin" }), { ready: true });
  const model: any = await call(client, "ModelMetadata", { name: "lin", version: "1" });
  assert.equal(model.platform, "onnxruntime_onnx");
  assert.deepEqual(model.inputs, [{ name: "x", datatype: "FP32", shape: ["-1", "4"] }]);
  assert.deepEqual(model.outputs, [{ name: "probs", datatype: "FP32", shape: ["-1", "3"] }]);
});

test("ModelInfer: typed FP32 contents in, typed contents out, values right", async () => {
  const res: any = await call(client, "ModelInfer", {
    model_name: "lin", id: "req-1",
    inputs: [{ name: "x", datatype: "FP32", shape: [2, 4], contents: { fp32_contents: rows.flat() } }],
  });
  assert.equal(res.model_name, "lin");
  assert.equal(res.id, "req-1");
  assert.equal(res.raw_output_contents.length, 0);
  const [out] = res.outputs;
  assert.equal(out.name, "probs");
  assert.deepEqual(out.shape, ["2", "3"]);
  const values: number[] = out.contents.fp32_contents;
  rows.forEach((row, i) => {
    const want = linearClassifierForward(W, row);
    want.forEach((w, j) => assert.ok(Math.abs(values[i * 3 + j]! - w) < 1e-5));
  });
});

test("ModelInfer: raw_input_contents in, raw_output_contents out (as Triton's clients send and read)", async () => {
  const x = Buffer.from(new Float32Array(rows.flat()).buffer);
  const res: any = await call(client, "ModelInfer", {
    model_name: "lin", inputs: [{ name: "x", datatype: "FP32", shape: [2, 4] }], raw_input_contents: [x],
  });
  assert.equal(res.outputs[0].contents, null);
  const raw: Buffer = res.raw_output_contents[0];
  const probs = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  assert.equal(probs.length, 6);
  assert.ok(Math.abs(probs[3]! - linearClassifierForward(W, rows[1]!)[0]!) < 1e-5);
});

test("ModelInfer: large raw inputs at every byte offset of the message come out as sent (moved in place or copied)", async () => {
  // Over 64 KiB a message's buffer is the request's own: a misaligned FP32 or FP64 input is moved down within it,
  // unless that would overwrite the input before it, and then copied. The id's length
  // moves all three through every offset modulo 8.
  const n = 20_000;
  const m = 3; // a small c: two bytes of framing before it, so moving it down by 5 to 7 would overwrite the end of b
  const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1000);
  const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 7) * 10);
  const c = Float64Array.from({ length: m }, (_, i) => i / 3 + 1e-9 * i);
  const values = (raw: Buffer, Type: Float32ArrayConstructor | Float64ArrayConstructor) => new Type(Uint8Array.from(raw).buffer);
  // A gzip-compressed message too: grpc-js inflates it into a buffer of its own, which is claimed the same way.
  const gzip = inferenceClient(srv.grpcAddress!, undefined, { "grpc.default_compression_algorithm": 2 });
  for (let shift = 0; shift < 10; shift++) {
    const res: any = await call(shift < 8 ? client : gzip, "ModelInfer", {
      model_name: "pair", id: "x".repeat(shift % 8),
      inputs: [{ name: "a", datatype: "FP32", shape: [n] }, { name: "b", datatype: "FP32", shape: [n] }, { name: "c", datatype: "FP64", shape: [m] }],
      raw_input_contents: [Buffer.from(a.buffer), Buffer.from(b.buffer), Buffer.from(c.buffer)],
    });
    const out = Object.fromEntries(res.outputs.map((o: any, i: number) => [o.name, res.raw_output_contents[i] as Buffer]));
    assert.deepEqual(values(out.a_out, Float32Array), a, `a, shift ${shift}`);
    assert.deepEqual(values(out.c_out, Float64Array), c, `c, shift ${shift}`);
    const sum = values(out.sum, Float32Array);
    sum.forEach((v, i) => assert.equal(v, Math.fround(a[i]! + b[i]!), `sum[${i}], shift ${shift}`));
  }
  gzip.close();
});

test("ModelInfer on every element type: INT64, BOOL, INT8, UINT8 typed, FP16 raw only", async () => {
  const typed: any = await call(client, "ModelInfer", {
    model_name: "zoo",
    outputs: [{ name: "ids_out" }, { name: "mask_not" }, { name: "small_out" }, { name: "u8_out" }],
    inputs: [
      { name: "ids", datatype: "INT64", shape: [1, 2], contents: { int64_contents: ["9007199254740993", "-5"] } },
      { name: "mask", datatype: "BOOL", shape: [1, 2], contents: { bool_contents: [true, false] } },
      { name: "small", datatype: "INT8", shape: [2], contents: { int_contents: [-128, 127] } },
      { name: "u8", datatype: "UINT8", shape: [2], contents: { uint_contents: [0, 255] } },
      { name: "half", datatype: "FP16", shape: [2] },
      { name: "f", datatype: "FP32", shape: [1, 3], contents: { fp32_contents: [-1, 0, 2] } },
    ],
  }).catch((e) => e);
  // FP16 cannot travel typed: the whole request is refused, naming the input.
  assert.equal(typed.code, status.INVALID_ARGUMENT);
  assert.match(typed.details, /^INVALID_REQUEST: inputs\.half/);
  const half = Buffer.from(new Uint16Array([0x3c00, 0xc000]).buffer); // 1, -2
  const raw = [
    Buffer.from(new BigInt64Array([9007199254740993n, -5n]).buffer), Buffer.from([1, 0]), Buffer.from(new Int8Array([-128, 127]).buffer),
    Buffer.from([0, 255]), half, Buffer.from(new Float32Array([-1, 0, 2]).buffer),
  ];
  const res: any = await call(client, "ModelInfer", {
    model_name: "zoo",
    inputs: [
      { name: "ids", datatype: "INT64", shape: [1, 2] }, { name: "mask", datatype: "BOOL", shape: [1, 2] }, { name: "small", datatype: "INT8", shape: [2] },
      { name: "u8", datatype: "UINT8", shape: [2] }, { name: "half", datatype: "FP16", shape: [2] }, { name: "f", datatype: "FP32", shape: [1, 3] },
    ],
    raw_input_contents: raw,
  });
  const byName = Object.fromEntries(res.outputs.map((o: any, i: number) => [o.name, { ...o, raw: res.raw_output_contents[i] as Buffer }]));
  assert.equal(byName.ids_out.datatype, "INT64");
  assert.equal(byName.ids_out.raw.readBigInt64LE(0), 9007199254740993n);
  assert.deepEqual([...byName.mask_not.raw], [0, 1]);
  assert.equal(byName.half_out.datatype, "FP16");
  assert.deepEqual([...byName.half_out.raw], [...half]);
  assert.deepEqual([...new Float32Array(byName.f_relu.raw.buffer.slice(byName.f_relu.raw.byteOffset, byName.f_relu.raw.byteOffset + 12))], [0, 0, 2]);
});

test("bad requests get coded statuses: NOT_FOUND, INVALID_ARGUMENT for shape, dtype, size and content, RESOURCE_EXHAUSTED over the element limit", async () => {
  const infer = (req: object) => callError(call(client, "ModelInfer", { model_name: "lin", ...req }));
  const missing = await callError(call(client, "ModelInfer", { model_name: "nope", inputs: [] }));
  assert.equal(missing.code, status.NOT_FOUND);
  assert.match(missing.details, /^MODEL_NOT_FOUND: /);
  assert.equal(missing.metadata.get("inferno-error-code")[0], "MODEL_NOT_FOUND");
  const cases: Array<[string, object, RegExp]> = [
    ["wrong dtype", { inputs: [{ name: "x", datatype: "INT32", shape: [1, 4], contents: { int_contents: [1, 2, 3, 4] } }] }, /datatype: expected "FP32"/],
    ["wrong shape", { inputs: [{ name: "x", datatype: "FP32", shape: [1, 5], contents: { fp32_contents: [1, 2, 3, 4, 5] } }] }, /inputs\.x/],
    ["count mismatch", { inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], contents: { fp32_contents: [1, 2] } }] }, /expected 4 elements/],
    ["raw size mismatch", { inputs: [{ name: "x", datatype: "FP32", shape: [1, 4] }], raw_input_contents: [Buffer.alloc(15)] }, /expected 16 raw bytes/],
    ["raw count mismatch", { inputs: [{ name: "x", datatype: "FP32", shape: [1, 4] }], raw_input_contents: [Buffer.alloc(16), Buffer.alloc(4)] }, /2 entries for 1 inputs/],
    ["unknown input", { inputs: [{ name: "y", datatype: "FP32", shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] }, /unknown input/],
    ["huge declared shape", { inputs: [{ name: "x", datatype: "FP32", shape: ["4000000000000", 4] }], raw_input_contents: [Buffer.alloc(16)] }, /inputs\.x/],
    ["negative dim", { inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }], raw_input_contents: [Buffer.alloc(16)] }, /inputs\.x/],
    ["bad version", { model_version: "7", inputs: [] }, /no version '7'/],
  ];
  for (const [what, req, message] of cases) {
    const err = await infer(req);
    const code = what === "bad version" ? status.NOT_FOUND : what === "huge declared shape" ? status.RESOURCE_EXHAUSTED : status.INVALID_ARGUMENT;
    assert.equal(err.code, code, what);
    assert.match(err.details, message, what);
  }
});

test("repository calls: index, load, unload; statistics count inferences", async () => {
  await call(client, "RepositoryModelUnload", { model_name: "lin" });
  let index: any = await call(client, "RepositoryIndex", {});
  assert.equal(index.models.find((m: any) => m.name === "lin").state, "UNAVAILABLE");
  await call(client, "RepositoryModelLoad", { model_name: "lin" });
  index = await call(client, "RepositoryIndex", { ready: true });
  assert.ok(index.models.some((m: any) => m.name === "lin" && m.state === "READY"));
  assert.equal((await callError(call(client, "RepositoryModelLoad", { model_name: "nope" }))).code, status.NOT_FOUND);
  const before: any = await call(client, "ModelStatistics", { name: "lin" });
  await call(client, "ModelInfer", { model_name: "lin", inputs: [{ name: "x", datatype: "FP32", shape: [2, 4], contents: { fp32_contents: rows.flat() } }] });
  const after: any = await call(client, "ModelStatistics", { name: "lin" });
  assert.equal(Number(after.model_stats[0].inference_count) - Number(before.model_stats[0].inference_count), 2);
  assert.equal(Number(after.model_stats[0].inference_stats.success.count) - Number(before.model_stats[0].inference_stats.success.count), 1);
});

test("reflection lists the service (grpcurl, Postman)", async () => {
  const { loadPackageDefinition, credentials } = await import("@grpc/grpc-js");
  const { loadSync } = await import("@grpc/proto-loader");
  const { createRequire } = await import("node:module");
  const protoPath = createRequire(import.meta.url).resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
  const reflection: any = loadPackageDefinition(loadSync(protoPath, { keepCase: true }));
  const r = new reflection.grpc.reflection.v1.ServerReflection(srv.grpcAddress, credentials.createInsecure());
  const services = await new Promise<string[]>((resolve, reject) => {
    const stream = r.ServerReflectionInfo();
    stream.on("data", (msg: any) => {
      resolve(msg.list_services_response.service.map((s: any) => s.name));
      stream.end();
    });
    stream.on("error", reject);
    stream.write({ list_services: "" });
  });
  r.close();
  assert.ok(services.includes("inference.GRPCInferenceService"), services.join(", "));
});

test("GGUF over ModelInfer: text_input in, the same text as REST out, usage in parameters", { skip: stories.skip }, async () => {
  const settings = { max_tokens: 24, temperature: 0 };
  const rest = await postJson(`${srv.url}/inference`, { model: "stories", prompt: "Once upon a time", ...settings });
  assert.equal(rest.status, 200);
  const res: any = await call(client, "ModelInfer", {
    model_name: "stories",
    parameters: { max_tokens: { int64_param: 24 }, temperature: { double_param: 0 } },
    inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("Once upon a time")] } }],
  });
  assert.equal(res.outputs[0].name, "text_output");
  assert.equal(res.outputs[0].contents.bytes_contents[0].toString("utf8"), rest.body.choices[0].text);
  assert.equal(res.parameters.completion_tokens.int64_param, String(rest.body.usage.completion_tokens));
  // Raw input, settings as input tensors: raw output.
  const raw: any = await call(client, "ModelInfer", {
    model_name: "stories",
    inputs: [{ name: "text_input", datatype: "BYTES", shape: [1] }, { name: "max_tokens", datatype: "INT32", shape: [1] }, { name: "temperature", datatype: "FP32", shape: [1] }],
    raw_input_contents: [rawBytes("Once upon a time"), Buffer.from(new Int32Array([24]).buffer), Buffer.from(new Float32Array([0]).buffer)],
  });
  assert.deepEqual(readRawBytes(raw.raw_output_contents[0]), [rest.body.choices[0].text]);
  const bad = await callError(call(client, "ModelInfer", {
    model_name: "stories", parameters: { temperature: { double_param: 9 } },
    inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("x")] } }],
  }));
  assert.equal(bad.code, status.INVALID_ARGUMENT);
  assert.match(bad.details, /temperature/);
});

test("ModelStreamInfer: one response per token chunk, a final one with usage; many streams on one channel", { skip: stories.skip }, async () => {
  const whole: any = await call(client, "ModelInfer", {
    model_name: "stories", parameters: { max_tokens: { int64_param: 32 }, temperature: { double_param: 0 } },
    inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("Lily went")] } }],
  });
  const expected = whole.outputs[0].contents.bytes_contents[0].toString("utf8");
  const streamOnce = (id: string) =>
    new Promise<{ text: string; chunks: number; final: any }>((resolve, reject) => {
      const stream = client.ModelStreamInfer();
      let text = "";
      let chunks = 0;
      let final: any;
      stream.on("data", (msg: any) => {
        if (msg.error_message) return reject(new Error(msg.error_message));
        const r = msg.infer_response;
        assert.equal(r.id, id);
        if (r.parameters.triton_final_response.bool_param) final = r;
        else {
          chunks++;
          text += r.outputs[0].contents.bytes_contents[0].toString("utf8");
        }
      });
      stream.on("end", () => resolve({ text, chunks, final }));
      stream.on("error", reject);
      stream.write({
        model_name: "stories", id,
        parameters: { max_tokens: { int64_param: 32 }, temperature: { double_param: 0 }, stream: { bool_param: true } },
        inputs: [{ name: "text_input", datatype: "BYTES", shape: [1], contents: { bytes_contents: [Buffer.from("Lily went")] } }],
      });
      stream.end();
    });
  const results = await Promise.all(["a", "b", "c", "d", "e", "f"].map(streamOnce));
  for (const r of results) {
    assert.equal(r.text, expected);
    assert.ok(r.chunks > 1);
    assert.equal(r.final.parameters.completion_tokens.int64_param, whole.parameters.completion_tokens.int64_param);
  }
});
