// POST /models/pull and POST /api/pull through a real listen + fetch, downloading from a loopback HTTP
// server in the test (Range / If-Range / ETag, slow on demand). Needs ../shared/models: mnist-8.onnx and
// stories260K.gguf (skipped without them).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { realModel } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const mnist = realModel("mnist-8.onnx");
const stories = realModel("stories260K.gguf");
const skip = mnist.skip || stories.skip;

const ETAG = '"v1"';
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let upstream: http.Server;
let up: string;
/** Path → file; paths under /slow/ are sent in 64 KiB chunks 25 ms apart. */
const files = new Map<string, Buffer>();
const requests: { path: string; range: string | undefined }[] = [];
let permissive: TestServer;
let locked: TestServer;
let adminKey: string;
let userKey: string;

function serve(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? "/";
  requests.push({ path: url, range: req.headers.range });
  if (url === "/owner/repo/resolve/main/mnist-hf.onnx") return void res.writeHead(302, { location: "/mnist-8.onnx" }).end();
  const body = files.get(url);
  if (!body) return void res.writeHead(404).end("not found");
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const honour = range !== null && (req.headers["if-range"] === undefined || req.headers["if-range"] === ETAG);
  const start = honour ? Number(range[1]) : 0;
  const slice = body.subarray(start);
  res.writeHead(honour ? 206 : 200, {
    etag: ETAG, "accept-ranges": "bytes", "content-length": slice.length,
    ...(honour ? { "content-range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
  });
  if (!url.startsWith("/slow/")) return void res.end(slice);
  let at = 0;
  const next = () => {
    if (res.destroyed) return;
    if (at >= slice.length) return void res.end();
    res.write(slice.subarray(at, at + 64 * 1024));
    at += 64 * 1024;
    setTimeout(next, 25);
  };
  next();
}

before(async () => {
  if (skip) return;
  const onnx = await readFile(mnist.path);
  const gguf = await readFile(stories.path);
  for (const p of ["/mnist-8.onnx", "/mnist-bad.onnx", "/o/mnist-ollama.onnx", "/o/mnist-quiet.onnx"]) files.set(p, onnx);
  files.set("/slow/stories260K.gguf", gguf);
  upstream = http.createServer(serve);
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  permissive = await startTestServer({ config: { pullAllowPrivate: true, hfEndpoint: up } });
  locked = await startTestServer({ config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const keys = new ApiKeyStore(openDatabase(locked.dataDir));
  adminKey = keys.create({ user: "root", name: "admin key", role: "admin" }).key;
  userKey = keys.create({ user: "alice", name: "alice key", role: "user" }).key;
});

after(async () => {
  if (skip) return;
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
  await permissive.cleanup();
  await locked.cleanup();
});

const pull = (srv: TestServer, body: unknown, init: RequestInit = {}, route = "/models/pull") =>
  fetch(`${srv.url}${route}`, { method: "POST", headers: { "content-type": "application/json", ...init.headers }, body: JSON.stringify(body), ...(init.signal ? { signal: init.signal } : {}) });

async function lines(res: Response): Promise<any[]> {
  return (await res.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Reads NDJSON lines until `until` accepts one; returns them and the reader (still open). */
async function readUntil(res: Response, until: (line: any) => boolean) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const got: any[] = [];
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended before the expected line: ${JSON.stringify(got)}`);
    buffered += decoder.decode(value, { stream: true });
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    for (const p of parts.filter(Boolean)) {
      got.push(JSON.parse(p));
      if (until(got[got.length - 1])) return { got, reader, rest: buffered };
    }
  }
}

/** Pulls that leave no hidden part files behind. */
const partFiles = async (srv: TestServer) => (await readdir(srv.modelsDir)).filter((f) => f.startsWith("."));

test("an ONNX pull streams progress, then verifying, then the model; it is listed and classifies", { skip }, async () => {
  const res = await pull(permissive, { source: `${up}/mnist-8.onnx` });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/x-ndjson/);
  const got = await lines(res);
  const size = files.get("/mnist-8.onnx")!.length;
  const progress = got.filter((l) => l.status === "downloading");
  assert.ok(progress.length >= 1);
  assert.deepEqual(progress.at(-1), { status: "downloading", completed: size, total: size });
  assert.deepEqual(got.slice(progress.length).map((l) => l.status), ["verifying", "success"]);
  const model = got.at(-1).model;
  assert.equal(model.id, "mnist-8");
  assert.equal(model.type, "onnx");
  assert.deepEqual(model.capabilities, ["tensor-inference"]);
  // The same view as GET /models/:id.
  const view = await (await fetch(`${permissive.url}/models/mnist-8`)).json();
  assert.deepEqual(model, view);
  const listed = (await (await fetch(`${permissive.url}/models`)).json()) as { models: { id: string }[] };
  assert.ok(listed.models.some((m) => m.id === "mnist-8"));
  assert.equal(sha256(await readFile(path.join(permissive.modelsDir, "mnist-8.onnx"))), sha256(files.get("/mnist-8.onnx")!));
  assert.deepEqual(await partFiles(permissive), []);

  const zeros = [[Array.from({ length: 28 }, () => new Array(28).fill(0))]];
  const infer = await postJson(`${permissive.url}/v2/models/mnist-8/infer`, {
    inputs: [{ name: "Input3", shape: [1, 1, 28, 28], datatype: "FP32", data: zeros.flat(3) }],
  });
  assert.equal(infer.status, 200, JSON.stringify(infer.body));
  assert.deepEqual(infer.body.outputs[0].shape, [1, 10]);
});

test("an existing model is 409 MODEL_EXISTS; force replaces it (unloading it), and stream: false answers one object", { skip }, async () => {
  const again = await postJson(`${permissive.url}/models/pull`, { source: `${up}/mnist-8.onnx` });
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, "MODEL_EXISTS");
  const forced = await pull(permissive, { source: `${up}/mnist-8.onnx`, force: true, stream: false });
  assert.equal(forced.status, 200);
  assert.match(forced.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await forced.json()) as any;
  assert.equal(body.status, "success");
  assert.equal(body.model.id, "mnist-8");
  assert.equal(body.model.loaded, false, "the replaced model, loaded by the last test, was unloaded");
});

test("a sha256 mismatch ends the stream with an error line and leaves no file", { skip }, async () => {
  const res = await pull(permissive, { source: `${up}/mnist-bad.onnx`, sha256: "0".repeat(64) });
  assert.equal(res.status, 200);
  const last = (await lines(res)).at(-1);
  assert.equal(last.status, "error");
  assert.equal(last.error.code, "INVALID_MODEL_FILE");
  assert.equal(last.error.details.reason, "CHECKSUM_MISMATCH");
  assert.match(last.error.message, /sha256/);
  const names = await readdir(permissive.modelsDir);
  assert.ok(!names.some((n) => n.includes("mnist-bad")), names.join(", "));
});

test("a bad body, source or name is a coded 400 before anything is fetched; nothing escapes the models dir", { skip }, async () => {
  const before = requests.length;
  const cases: Array<[unknown, string, string | undefined]> = [
    [{}, "source", undefined],
    [{ source: `${up}/mnist-8.onnx`, extra: 1 }, "", undefined],
    [{ source: `${up}/mnist-8.onnx`, sha256: "abc" }, "sha256", undefined],
    [{ source: "ftp://example.com/m.gguf" }, "source", "INVALID_SOURCE"],
    [{ source: "file:///etc/passwd" }, "source", "INVALID_SOURCE"],
    [{ source: "hf:just-owner" }, "source", "INVALID_SOURCE"],
    [{ source: `${up}/notes.txt` }, "source", "INVALID_SOURCE"],
    [{ source: "http://user:secret@example.com/m.gguf" }, "source", "INVALID_SOURCE"],
    [{ source: `${up}/mnist-8.onnx`, name: "../x" }, "name", "INVALID_NAME"],
    [{ source: `${up}/mnist-8.onnx`, name: "/tmp/x" }, "name", "INVALID_NAME"],
    [{ source: `${up}/mnist-8.onnx`, name: "a/b" }, "name", "INVALID_NAME"],
    [{ source: `${up}/mnist-8.onnx`, name: "x\u0000y" }, "name", "INVALID_NAME"],
    [{ source: `${up}/mnist-8.onnx`, name: ".hidden" }, "name", "INVALID_NAME"],
    [{ source: `${up}/..%2F..%2Fevil.onnx` }, "source", "INVALID_SOURCE"],
  ];
  for (const [body, param, reason] of cases) {
    const r = await postJson(`${permissive.url}/models/pull`, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.code, "INVALID_REQUEST", JSON.stringify(body));
    // Schema refusals name the field; pullModel's refusals carry its code.
    if (reason) assert.equal(r.body.error.details.reason, reason, JSON.stringify(body));
    else if (param) assert.match(r.body.error.message, new RegExp(param), JSON.stringify(body));
  }
  assert.equal(requests.length, before, "no request reached the source");
  assert.deepEqual((await readdir(path.dirname(permissive.modelsDir))).sort(), ["data", "models"]);
});

test("a source that answers 404 is 502 DOWNLOAD_FAILED, before any line", { skip }, async () => {
  const r = await postJson(`${permissive.url}/models/pull`, { source: `${up}/missing.onnx` });
  assert.equal(r.status, 502);
  assert.equal(r.body.error.code, "DOWNLOAD_FAILED");
  assert.match(r.body.error.message, /HTTP 404/);
});

test("hf: sources use hfEndpoint and follow its redirect", { skip }, async () => {
  const r = await postJson(`${permissive.url}/models/pull`, { source: "hf:owner/repo/mnist-hf.onnx", stream: false });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.model.id, "mnist-hf");
});

test("a client that leaves stops the download and keeps the part; the next pull resumes it", { skip }, async () => {
  const gguf = files.get("/slow/stories260K.gguf")!;
  const controller = new AbortController();
  const res = await pull(permissive, { source: `${up}/slow/stories260K.gguf`, name: "story" }, { signal: controller.signal });
  assert.equal(res.status, 200);
  await readUntil(res, (l) => l.status === "downloading" && l.completed > 0);
  controller.abort();
  // The server lets go of the id once its download has stopped.
  let second: Response;
  for (const started = Date.now(); ; await sleep(25)) {
    second = await pull(permissive, { source: `${up}/slow/stories260K.gguf`, name: "story" });
    if (second.status !== 409) break;
    await second.body?.cancel();
    assert.ok(Date.now() - started < 5000, "the first pull never let go");
  }
  assert.equal(second.status, 200);
  const got = await lines(second);
  const resumedFrom = got[0].completed as number;
  assert.ok(resumedFrom > 0 && resumedFrom < gguf.length, `resumed from ${resumedFrom}`);
  assert.equal(requests.at(-1)!.range, `bytes=${resumedFrom}-`);
  assert.equal(got.at(-1).status, "success", JSON.stringify(got.at(-1)));
  assert.equal(got.at(-1).model.type, "gguf");
  assert.equal(sha256(await readFile(path.join(permissive.modelsDir, "story.gguf"))), sha256(gguf));
  assert.deepEqual(await partFiles(permissive), []);
  // Progress is thinned: about one line per 100 ms, not one per chunk.
  assert.ok(got.filter((l) => l.status === "downloading").length < gguf.length / (64 * 1024));
});

test("a second pull of the same model while one runs is 409 and leaves the first intact", { skip }, async () => {
  const gguf = files.get("/slow/stories260K.gguf")!;
  const first = await pull(permissive, { source: `${up}/slow/stories260K.gguf`, name: "story2" });
  const { got, reader, rest } = await readUntil(first, (l) => l.status === "downloading");
  for (const source of [`${up}/slow/stories260K.gguf`, `${up}/mnist-8.onnx`]) {
    const r = await postJson(`${permissive.url}/models/pull`, { source, name: "story2" });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, "MODEL_BUSY");
    assert.equal(r.body.error.details.reason, "PULL_IN_PROGRESS");
  }
  let text = rest;
  const decoder = new TextDecoder();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
  const all = [...got, ...text.split("\n").filter(Boolean).map((l) => JSON.parse(l))];
  assert.equal(all.at(-1).status, "success");
  assert.equal(sha256(await readFile(path.join(permissive.modelsDir, "story2.gguf"))), sha256(gguf));
});

test("with auth on: admin only; private and loopback sources are refused without pullAllowPrivate", { skip }, async () => {
  const as = (key?: string): RequestInit => ({ headers: key ? { authorization: `Bearer ${key}` } : {} });
  const body = { source: `${up}/mnist-8.onnx` };
  assert.equal((await pull(locked, body, as())).status, 401);
  for (const route of ["/models/pull", "/api/pull"]) {
    const r = await pull(locked, { ...body, model: body.source }, as(userKey), route);
    assert.equal(r.status, 403, route);
  }
  const userRefusal = (await (await pull(locked, body, as(userKey))).json()) as any;
  assert.equal(userRefusal.error.code, "AUTHORIZATION_FAILED");
  const before = requests.length;
  for (const source of [`${up}/mnist-8.onnx`, up.replace("127.0.0.1", "localhost") + "/mnist-8.onnx", "http://[::1]:9/m.onnx", "http://169.254.169.254/m.onnx"]) {
    const r = await pull(locked, { source }, as(adminKey));
    const answer = (await r.json()) as any;
    assert.equal(r.status, 400, `${source}: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.code, "INVALID_REQUEST");
    assert.equal(answer.error.details.reason, "PRIVATE_ADDRESS");
    assert.match(answer.error.message, /pullAllowPrivate/);
  }
  assert.equal(requests.length, before, "no request reached the private source");
  assert.deepEqual(await readdir(locked.modelsDir), []);
});

test("Ollama's /api/pull: an hf:/URL model streams Ollama's lines; a registry name is refused", { skip }, async () => {
  const refused = await postJson(`${permissive.url}/api/pull`, { model: "llama3" });
  assert.equal(refused.status, 400);
  assert.match(refused.body.error, /Ollama's registry.*hf:OWNER\/REPO/);
  const hfco = await postJson(`${permissive.url}/api/pull`, { model: "hf.co/owner/repo:Q4_K_M" });
  assert.equal(hfco.status, 400);

  const res = await pull(permissive, { model: `${up}/o/mnist-ollama.onnx` }, {}, "/api/pull");
  assert.equal(res.status, 200);
  const got = await lines(res);
  const size = files.get("/o/mnist-ollama.onnx")!.length;
  assert.deepEqual(got[0], { status: "pulling manifest" });
  assert.deepEqual(got.filter((l) => l.status === "downloading").at(-1), { status: "downloading", digest: "mnist-ollama.onnx", total: size, completed: size });
  assert.deepEqual(got.slice(-2), [{ status: "verifying sha256 digest" }, { status: "success" }]);
  assert.equal((await fetch(`${permissive.url}/models/mnist-ollama`)).status, 200);

  const quiet = await postJson(`${permissive.url}/api/pull`, { model: `${up}/o/mnist-quiet.onnx`, stream: false });
  assert.equal(quiet.status, 200);
  assert.deepEqual(quiet.body, { status: "success" });
  const exists = await postJson(`${permissive.url}/api/pull`, { model: `${up}/o/mnist-quiet.onnx` });
  assert.equal(exists.status, 409);
  assert.match(exists.body.error, /already exists/);
});
