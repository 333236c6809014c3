// Needs no external model: ONNX models are generated at test time (test/fixtures/onnx-writer.ts), the GGUF is the tiny fixture.
// The KServe v2 binary tensor data extension (Inference-Header-Content-Length) and raw octet-stream bodies on the native route.
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, test } from "node:test";
import { float16Bits } from "../../src/runtimes/onnx/tensor-codec.js";
import { buildOnnx, linearClassifierOnnx, typesZooOnnx } from "../fixtures/onnx-writer.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
const rows = [[0.5, -1, 2, 0.25], [1, 1, 1, 1], [-3, 0, 0.5, 2]];
const BIG = 2n ** 53n + 1n;

/** `text` string ["n"] → Identity → `text_out`. */
const stringsOnnx = () =>
  buildOnnx({
    graphName: "strings",
    nodes: [{ opType: "Identity", inputs: ["text"], outputs: ["text_out"] }],
    inputs: [{ name: "text", type: "string", shape: ["n"] }],
    outputs: [{ name: "text_out", type: "string", shape: ["n"] }],
  });

before(async () => {
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "zoo.onnx": typesZooOnnx(), "strings.onnx": stringsOnnx() },
    tinyModels: ["tiny"],
    config: { maxTensorElements: 100_000, bodyLimit: 1024 * 1024 },
  });
});
after(() => srv.cleanup());

const bytesOf = (view: ArrayBufferView) => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
const f32 = (values: number[]) => bytesOf(new Float32Array(values));
/** BYTES elements as the extension lays them out: a 4-byte little-endian length, then the bytes. */
const lengthPrefixed = (values: Array<string | Buffer>) =>
  Buffer.concat(values.flatMap((v) => {
    const b = typeof v === "string" ? Buffer.from(v) : v;
    const length = Buffer.alloc(4);
    length.writeUInt32LE(b.length);
    return [length, b];
  }));

interface Answer { status: number; headers: Headers; json: any; tail: Buffer }

/** POSTs a binary-extension request: the JSON header, then `chunks`; `headerLength` overrides the header's value. */
async function postBinary(path: string, header: unknown, chunks: Buffer[] = [], opts: { headerLength?: string; contentType?: string | null } = {}): Promise<Answer> {
  const head = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const headers: Record<string, string> = { "inference-header-content-length": opts.headerLength ?? String(head.length) };
  if (opts.contentType !== null) headers["content-type"] = opts.contentType ?? "application/octet-stream";
  const res = await fetch(`${srv.url}${path}`, { method: "POST", headers, body: Buffer.concat([head, ...chunks]) });
  return readAnswer(res);
}

async function readAnswer(res: Response): Promise<Answer> {
  const body = Buffer.from(await res.arrayBuffer());
  const length = res.headers.get("inference-header-content-length");
  const n = length === null ? body.length : Number(length);
  return { status: res.status, headers: res.headers, json: JSON.parse(body.subarray(0, n).toString()), tail: body.subarray(n) };
}

/** The binary outputs of an answer, cut from its tail by their binary_data_size. */
function binaryOutputs(answer: Answer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  for (const o of answer.json.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    assert.equal(o.data, undefined, `${o.name} is binary and has no data`);
    out.set(o.name, answer.tail.subarray(at, at + size));
    at += size;
  }
  assert.equal(at, answer.tail.length, "the binary outputs use the whole tail");
  return out;
}

const zooJson = { ids: [[1, -2, BIG.toString()]], mask: [[true, false, true]], small: [-128, 127], u8: [0, 255], half: [1.5, -0.25], f: [[-1, 0, 2]] };

test("binary FP32 input: same outputs as the JSON path, answered as plain JSON", async () => {
  const json = await postJson(`${srv.url}/v2/models/lin/infer`, { inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", data: rows.flat() }] });
  assert.equal(json.status, 200);
  const r = await postBinary("/v2/models/lin/infer", { id: "b1", inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", parameters: { binary_data_size: 48 } }] }, [f32(rows.flat())]);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(r.headers.get("inference-header-content-length"), null);
  assert.deepEqual(r.json, { ...json.body, id: "b1" });
  // The versioned route takes it too.
  const v = await postBinary("/v2/models/lin/versions/1/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } }] }, [f32(rows[0]!)]);
  assert.equal(v.status, 200);
  assert.deepEqual(v.json.outputs[0].data, json.body.outputs[0].data.slice(0, 3));
});

test("mixed JSON and binary inputs of every type (INT64 past 2^53, FP16, UINT8); binary outputs are the same bytes", async () => {
  const ids = bytesOf(new BigInt64Array([1n, -2n, BIG]));
  const half = bytesOf(new Uint16Array([float16Bits(1.5), float16Bits(-0.25)]));
  const u8 = Buffer.from([0, 255]);
  const header = {
    inputs: [
      { name: "u8", shape: [2], datatype: "UINT8", parameters: { binary_data_size: 2 } },
      { name: "ids", shape: [1, 3], datatype: "INT64", parameters: { binary_data_size: 24 } },
      { name: "mask", shape: [1, 3], datatype: "BOOL", data: [true, false, true] },
      { name: "half", shape: [2], datatype: "FP16", parameters: { binary_data_size: 4 } },
      { name: "small", shape: [2], datatype: "INT8", data: [-128, 127] },
      { name: "f", shape: [1, 3], datatype: "FP32", data: [-1, 0, 2] },
    ],
  };
  const json = await postJson(`${srv.url}/models/zoo/inference`, { inputs: zooJson, layout: "flat" });
  assert.equal(json.status, 200);
  const r = await postBinary("/v2/models/zoo/infer", header, [u8, ids, half]);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const byName = Object.fromEntries(r.json.outputs.map((o: any) => [o.name, o]));
  for (const [name, native] of Object.entries<any>(json.body.outputs)) assert.deepEqual(byName[name].data, native.data, name);

  const b = await postBinary("/v2/models/zoo/infer", { ...header, parameters: { binary_data_output: true } }, [u8, ids, half]);
  assert.equal(b.status, 200, JSON.stringify(b.json));
  assert.equal(b.headers.get("content-type"), "application/octet-stream");
  const raw = binaryOutputs(b);
  assert.deepEqual([...raw.keys()].sort(), ["f_relu", "half_out", "ids_out", "mask_not", "small_out", "u8_out"]);
  assert.deepEqual(raw.get("ids_out"), ids);
  assert.deepEqual(raw.get("half_out"), half);
  assert.deepEqual(raw.get("u8_out"), u8);
  assert.deepEqual(raw.get("mask_not"), Buffer.from([0, 1, 0]));
  assert.deepEqual(raw.get("f_relu"), f32([0, 0, 2]));
  assert.deepEqual(b.json.outputs.find((o: any) => o.name === "half_out"), { name: "half_out", datatype: "FP16", shape: [2], parameters: { binary_data_size: 4 } });
});

test("BYTES in and out: 4-byte little-endian lengths, UTF-8, empty strings", async () => {
  const words = ["héllo", "", "wörld 🙂"];
  const bytes = lengthPrefixed(words);
  const header = { inputs: [{ name: "text", shape: [3], datatype: "BYTES", parameters: { binary_data_size: bytes.length } }] };
  const r = await postBinary("/v2/models/strings/infer", header, [bytes]);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.outputs, [{ name: "text_out", shape: [3], datatype: "BYTES", data: words }]);
  const b = await postBinary("/v2/models/strings/infer", { ...header, outputs: [{ name: "text_out", parameters: { binary_data: true } }] }, [bytes]);
  assert.equal(b.status, 200);
  assert.deepEqual(binaryOutputs(b).get("text_out"), bytes);
  // A plain JSON request (no Inference-Header-Content-Length) may ask for binary outputs too.
  const j = await readAnswer(await fetch(`${srv.url}/v2/models/strings/infer`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "text", shape: [3], datatype: "BYTES", data: words }], parameters: { binary_data_output: true } }),
  }));
  assert.equal(j.status, 200);
  assert.deepEqual(binaryOutputs(j).get("text_out"), bytes);
});

test("binary outputs are chosen per output; a per-output false overrides the request's default", async () => {
  const inputs = [
    { name: "ids", shape: [1, 1], datatype: "INT64", data: [7] }, { name: "mask", shape: [1, 1], datatype: "BOOL", data: [true] },
    { name: "small", shape: [2], datatype: "INT8", data: [1, 2] }, { name: "u8", shape: [2], datatype: "UINT8", data: [1, 2] },
    { name: "half", shape: [2], datatype: "FP16", data: [1, 2] }, { name: "f", shape: [1, 3], datatype: "FP32", data: [-1, 5, 2] },
  ];
  const a = await postBinary("/v2/models/zoo/infer", { inputs, outputs: [{ name: "ids_out" }, { name: "f_relu", parameters: { binary_data: true } }] });
  assert.equal(a.status, 200, JSON.stringify(a.json));
  const one = binaryOutputs(a);
  assert.deepEqual([...one.keys()], ["f_relu"]);
  assert.deepEqual(one.get("f_relu"), f32([0, 5, 2]));
  assert.deepEqual(a.json.outputs.find((o: any) => o.name === "ids_out").data, [7]);
  const b = await postBinary("/v2/models/zoo/infer", {
    inputs, parameters: { binary_data_output: true }, outputs: [{ name: "ids_out", parameters: { binary_data: false } }, { name: "f_relu" }],
  });
  assert.deepEqual([...binaryOutputs(b).keys()], ["f_relu"]);
});

test("the extension is found by its header whatever the content type; other bodies read as JSON as before", async () => {
  const header = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } }] };
  for (const contentType of ["application/json", "text/plain", "application/x-www-form-urlencoded", null]) {
    const r = await postBinary("/v2/models/lin/infer", header, [f32(rows[0]!)], { contentType });
    assert.equal(r.status, 200, `${contentType}: ${JSON.stringify(r.json)}`);
  }
  const plain = await postJson(`${srv.url}/v2/models/lin/infer`, { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: rows[0] }] }, {
    headers: { "content-type": "text/plain" },
  });
  assert.equal(plain.status, 200);
  // Only the tensor routes read octet-stream bytes: elsewhere an octet-stream body is still JSON.
  const registered = await postJson(`${srv.url}/models`, { name: "lin-again", path: "lin.onnx" }, { headers: { "content-type": "application/octet-stream" } });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  assert.deepEqual((await (await fetch(`${srv.url}/v2`)).json() as any).extensions, ["binary_tensor_data"]);
});

test("hostile binary requests get a 400 in the KServe envelope and the server keeps serving", async () => {
  const lin = (parameters: unknown, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters, ...extra }] });
  const zooBinary = (u8Size: unknown, idsSize: unknown) => ({
    inputs: [
      { name: "u8", shape: [2], datatype: "UINT8", parameters: { binary_data_size: u8Size } },
      { name: "ids", shape: [1, 1], datatype: "INT64", parameters: { binary_data_size: idsSize } },
      { name: "mask", shape: [1, 1], datatype: "BOOL", data: [true] }, { name: "small", shape: [2], datatype: "INT8", data: [1, 2] },
      { name: "half", shape: [2], datatype: "FP16", data: [1, 2] }, { name: "f", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] },
    ],
  });
  const four = f32([1, 2, 3, 4]);
  const ok = lin({ binary_data_size: 16 });
  const cases: Array<[string, string, unknown, Buffer[], { headerLength?: string }?, number?]> = [
    ["header length not a number", "lin", ok, [four], { headerLength: "abc" }],
    ["header length negative", "lin", ok, [four], { headerLength: "-5" }],
    ["header length fractional", "lin", ok, [four], { headerLength: "5.0" }],
    ["header length in hex", "lin", ok, [four], { headerLength: "0x10" }],
    ["header length with an exponent", "lin", ok, [four], { headerLength: "1e3" }],
    ["header length empty", "lin", ok, [four], { headerLength: "" }],
    ["header length twice", "lin", ok, [four], { headerLength: "10, 10" }],
    ["header length past the body", "lin", ok, [four], { headerLength: "100000" }],
    ["header length zero", "lin", ok, [four], { headerLength: "0" }],
    ["header length cutting the JSON", "lin", ok, [four], { headerLength: "20" }],
    ["JSON header garbage", "lin", "{not json", []],
    ["JSON header with __proto__", "lin", '{"__proto__": {"x": 1}, "inputs": []}', []],
    ["JSON header not an object", "lin", [1, 2], []],
    ["sizes short of the body", "lin", lin({ binary_data_size: 12 }), [four]],
    ["bytes left over", "lin", ok, [four, Buffer.from([1])]],
    ["bytes but no binary input", "lin", lin(undefined, { data: [1, 2, 3, 4] }), [four]],
    ["one input overruns", "lin", lin({ binary_data_size: 64 }), [four]],
    ["second input overruns", "zoo", zooBinary(2, 16), [Buffer.from([1, 2]), Buffer.alloc(8)]],
    ["sizes sum right, split wrong", "zoo", zooBinary(4, 6), [Buffer.alloc(10)]],
    ["negative size", "lin", lin({ binary_data_size: -16 }), [four]],
    ["fractional size", "lin", lin({ binary_data_size: 1.5 }), [four]],
    ["size as a string", "lin", lin({ binary_data_size: "16" }), [four]],
    ["size null", "lin", lin({ binary_data_size: null }), [four]],
    ["binary size and data", "lin", lin({ binary_data_size: 16 }, { data: [1, 2, 3, 4] }), [four]],
    ["binary datatype mismatch", "lin", { inputs: [{ name: "x", shape: [1, 2], datatype: "INT64", parameters: { binary_data_size: 16 } }] }, [four]],
    ["binary bytes wrong for the shape", "lin", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 12 } }] }, [four.subarray(0, 12)]],
    ["BYTES length past the end", "strings", { inputs: [{ name: "text", shape: [1], datatype: "BYTES", parameters: { binary_data_size: 7 } }] }, [Buffer.from([100, 0, 0, 0, 1, 2, 3])]],
    ["BYTES not UTF-8", "strings", { inputs: [{ name: "text", shape: [1], datatype: "BYTES", parameters: { binary_data_size: 6 } }] }, [lengthPrefixed([Buffer.from([0xc3, 0x28])])]],
    ["BYTES fewer elements than the shape", "strings", { inputs: [{ name: "text", shape: [2], datatype: "BYTES", parameters: { binary_data_size: 5 } }] }, [lengthPrefixed(["a"])]],
    ["binary_data_output not a boolean", "lin", { ...ok, parameters: { binary_data_output: "yes" } }, [four]],
    ["binary_data not a boolean", "lin", { ...ok, outputs: [{ name: "probs", parameters: { binary_data: 1 } }] }, [four]],
    ["more elements than the limit", "lin", { inputs: [{ name: "x", shape: [50_000, 4], datatype: "FP32", parameters: { binary_data_size: 16 } }] }, [four], {}, 413],
  ];
  for (const [name, model, header, chunks, opts, status] of cases) {
    const r = await postBinary(`/v2/models/${model}/infer`, header, chunks, opts);
    assert.equal(r.status, status ?? 400, `${name}: ${JSON.stringify(r.json)}`);
    assert.deepEqual(Object.keys(r.json), ["error"], name);
    assert.equal(typeof r.json.error, "string", name);
  }
  // Binary sizes in a plain JSON request (no header) are refused as well.
  const noHeader = await postJson(`${srv.url}/v2/models/lin/infer`, ok);
  assert.equal(noHeader.status, 400);
  assert.match(noHeader.body.error, /Inference-Header-Content-Length/);
  // Over bodyLimit: Fastify's limit, in the same envelope.
  const huge = await postBinary("/v2/models/lin/infer", lin({ binary_data_size: 2 * 1024 * 1024 }), [Buffer.alloc(2 * 1024 * 1024)]);
  assert.equal(huge.status, 413);
  assert.deepEqual(Object.keys(huge.json), ["error"]);
  const good = await postBinary("/v2/models/lin/infer", ok, [four]);
  assert.equal(good.status, 200);
});

/** POSTs raw bytes to the native route; the answer is JSON. */
async function postRaw(id: string, query: string, body: Buffer, contentType = "application/octet-stream") {
  const res = await fetch(`${srv.url}/models/${id}/inference${query}`, { method: "POST", headers: { "content-type": contentType }, body });
  return { status: res.status, body: (await res.json()) as any };
}

test("native route: one raw tensor as application/octet-stream, shape and dtype in the query", async () => {
  const json = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } });
  assert.equal(json.status, 200);
  for (const query of ["?shape=3,4", "?shape=3,4&dtype=float32", "?shape=3,4&dtype=FP32"]) {
    const r = await postRaw("lin", query, f32(rows.flat()));
    assert.equal(r.status, 200, `${query}: ${JSON.stringify(r.body)}`);
    assert.deepEqual(r.body.outputs, json.body.outputs);
    assert.equal(r.body.model, "lin");
  }
  const s = await postRaw("strings", "?shape=2", lengthPrefixed(["a", "bé"]));
  assert.deepEqual(s.body.outputs.text_out, { shape: [2], dtype: "string", data: ["a", "bé"] });
});

test("native route: bad raw bodies get coded 400s, a GGUF model a 415, and the server keeps serving", async () => {
  const body = f32(rows.flat());
  const cases: Array<[string, string, string, Buffer, number, string?]> = [
    ["several inputs", "zoo", "?shape=2", Buffer.from([1, 2]), 400],
    ["no shape", "lin", "", body, 400],
    ["shape with a letter", "lin", "?shape=3,x", body, 400],
    ["shape with an empty dim", "lin", "?shape=3,,4", body, 400],
    ["negative dim", "lin", "?shape=-3,4", body, 400],
    ["fractional dim", "lin", "?shape=3.0,4", body, 400],
    ["scalar shape for a matrix input", "lin", "?shape=", body, 400],
    ["rank 9", "lin", "?shape=1,1,1,1,1,1,1,3,4", body, 400],
    ["byte count wrong for the shape", "lin", "?shape=2,4", body, 400],
    ["wrong dtype", "lin", "?shape=3,4&dtype=int32", body, 400],
    ["unknown dtype", "lin", "?shape=3,4&dtype=complex", body, 400],
    ["garbage", "lin", "", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)), 400],
    ["too many elements", "lin", "?shape=50000,4", body, 413, "PAYLOAD_TOO_LARGE"],
    ["a GGUF model", "tiny", "?shape=3,4", body, 415, "UNSUPPORTED_MEDIA_TYPE"],
  ];
  for (const [name, id, query, bytes, status, code] of cases) {
    const r = await postRaw(id, query, bytes);
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code ?? "INVALID_REQUEST", name);
  }
  const query = await postJson(`${srv.url}/models/lin/inference?shape=3,4`, { inputs: { x: rows } });
  assert.equal(query.status, 400);
  assert.equal(query.body.error.code, "INVALID_REQUEST");
  const notObject = await postJson(`${srv.url}/models/lin/inference`, [1, 2]);
  assert.equal(notObject.status, 400);
  assert.match(notObject.body.error.message, /octet-stream/);
  assert.equal((await postRaw("lin", "?shape=3,4", body)).status, 200);
});

/** Sends one HTTP/1.1 request by hand (so Content-Length can lie and chunks can be cut anywhere); the status and body. */
async function rawRequest(path: string, headers: Record<string, string>, chunks: Buffer[], opts: { chunked?: boolean } = {}): Promise<{ status: number; body: string }> {
  const { port } = new URL(srv.url);
  const socket = net.connect(Number(port), "127.0.0.1");
  await once(socket, "connect");
  socket.on("error", () => undefined); // the server may answer and close before every chunk is written
  const parts: Buffer[] = [];
  socket.on("data", (d: Buffer) => parts.push(d));
  const closed = once(socket, "close");
  const head = [`POST ${path} HTTP/1.1`, "host: localhost", "connection: close", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (opts.chunked) head.push("transfer-encoding: chunked");
  socket.write(`${head.join("\r\n")}\r\n\r\n`);
  for (const c of chunks) {
    if (socket.destroyed) break;
    socket.write(opts.chunked ? Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from("\r\n")]) : c);
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (opts.chunked && !socket.destroyed) socket.write("0\r\n\r\n");
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
  socket.destroy();
  const text = Buffer.concat(parts).toString();
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0);
  let body = text.slice(text.indexOf("\r\n\r\n") + 4);
  if (/transfer-encoding: chunked/i.test(text.slice(0, text.indexOf("\r\n\r\n")))) body = body.replace(/^[0-9a-f]+\r\n/, "").replace(/\r\n0\r\n\r\n$/, "");
  return { status, body };
}

test("tensor bodies are read in any cut, chunked or not; a short Content-Length or a chunked body over the limit is refused", async () => {
  const expected = await postJson(`${srv.url}/models/lin/inference`, { inputs: { x: rows } });
  const kserve = await postJson(`${srv.url}/v2/models/lin/infer`, { inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", data: rows.flat() }] });
  assert.equal(kserve.status, 200);
  // An odd header length puts the tensor bytes at an odd offset of the body: the reader aligns them.
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", parameters: { binary_data_size: 48 } }], pad: "x" }));
  const body = Buffer.concat([header, f32(rows.flat())]);
  const cuts = [[body], [body.subarray(0, 1), body.subarray(1, header.length + 3), body.subarray(header.length + 3)], [...body].map((b) => Buffer.from([b]))];
  for (const chunked of [false, true]) {
    for (const chunks of cuts) {
      const headers: Record<string, string> = { "inference-header-content-length": String(header.length), "content-type": "application/octet-stream" };
      if (!chunked) headers["content-length"] = String(body.length);
      const r = await rawRequest("/v2/models/lin/infer", headers, chunks, { chunked });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(JSON.parse(r.body).outputs, kserve.body.outputs);
    }
    const raw = await rawRequest("/models/lin/inference?shape=3,4", chunked ? { "content-type": "application/octet-stream" } : { "content-type": "application/octet-stream", "content-length": "48" }, [f32(rows.flat()).subarray(0, 5), f32(rows.flat()).subarray(5)], { chunked });
    assert.equal(raw.status, 200, raw.body);
    assert.deepEqual(JSON.parse(raw.body).outputs, expected.body.outputs);
  }
  // Content-Length says less than is sent: the body ends there (the rest is not a request) and is too short for the shape.
  const short = await rawRequest("/models/lin/inference?shape=3,4", { "content-type": "application/octet-stream", "content-length": "40" }, [f32(rows.flat())]);
  assert.equal(short.status, 400, short.body);
  const overChunked = await rawRequest("/models/lin/inference?shape=3,4", { "content-type": "application/octet-stream" }, Array.from({ length: 20 }, () => Buffer.alloc(64 * 1024)), { chunked: true });
  assert.equal(overChunked.status, 413, overChunked.body);
  assert.equal(JSON.parse(overChunked.body).error.code, "PAYLOAD_TOO_LARGE");
  assert.equal((await postRaw("lin", "?shape=3,4", f32(rows.flat()))).status, 200);
});

test("concurrent binary requests batched into one run each get their own rows back", async () => {
  const one = (i: number) => [i, -i, i / 2, 1];
  const alone = await Promise.all([0, 1, 2].map((i) => postJson(`${srv.url}/models/lin/inference`, { inputs: { x: [one(i)] } })));
  const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => {
    const header = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } }], id: "r".repeat(i % 5) };
    return postBinary("/v2/models/lin/infer", header, [f32(one(i % 3))]);
  }));
  answers.forEach((a, i) => {
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const probs = a.json.outputs.find((o: { name: string }) => o.name === "probs").data;
    assert.deepEqual(probs, alone[i % 3]!.body.outputs.probs.data.flat(), `request ${i}`);
  });
});
