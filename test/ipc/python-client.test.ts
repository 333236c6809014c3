// The Python IPC client (examples/ipc_client.py) as a user runs it, a child process per op, checked against
// what the server computes through the TypeScript client and the REST routes. Generated fixtures (lin.onnx,
// a tiny GGUF); the real stories260K.gguf for a greedy generation compared with REST /inference.
// Needs a python3 that can `import msgpack` (Debian's python3-msgpack): skipped without one, a failure in CI.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { connect, type InfernoClient } from "../../src/client/index.js";
import { buildTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { linearClassifierForward, linearClassifierOnnx, linearClassifierWeights } from "../fixtures/onnx-writer.js";
import { realModel, repoRoot, tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

/** The first of python3 and /usr/bin/python3 that has msgpack (a pyenv python3 on PATH may lack it). */
function findPython(): { skip: string | false; path: string } {
  for (const candidate of ["python3", "/usr/bin/python3"]) {
    if (spawnSync(candidate, ["-c", "import msgpack"], { stdio: "ignore" }).status === 0) return { skip: false, path: candidate };
  }
  const why = "no python3 with msgpack (apt-get install python3-msgpack)";
  if (process.env.INFERNO_REQUIRE_REAL_MODELS === "1") throw new Error(`the Python IPC client tests are required but there is ${why}`);
  return { skip: why, path: "" };
}

const python = findPython();
const stories = realModel("stories260K.gguf");
const example = path.join(repoRoot, "examples/ipc_client.py");
const W = linearClassifierWeights();
let srv: TestServer;
let socketPath: string;
let client: InfernoClient;
let tmp: { dir: string; cleanup: () => Promise<void> };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the example with `args` (asynchronously: the server answers from this process). */
function runPython(args: string[], env: Record<string, string> = {}, input?: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(python.path, [example, ...args], { env: { ...process.env, INFERNO_TOKEN: "", PYTHONIOENCODING: "utf-8", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The example's JSON answer; fails with its stderr when it did not succeed. */
async function pyJson(args: string[], env?: Record<string, string>, input?: Buffer): Promise<any> {
  const r = await runPython(args, env, input);
  assert.equal(r.code, 0, `python ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A run that must fail: exit 1 and `CODE: message` on stderr. */
async function pyError(args: string[], code: string, env?: Record<string, string>): Promise<string> {
  const r = await runPython(args, env);
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^${code}: `, "m"));
  return r.stderr;
}

const floatsOf = (data: Uint8Array | string[]) => Array.from(new Float32Array(new Uint8Array(data as Uint8Array).buffer));

before(async () => {
  if (python.skip) return;
  tmp = await tempDir("inferno-ipc-py-");
  socketPath = path.join(tmp.dir, "inferno.sock");
  srv = await startTestServer({
    files: { "lin.onnx": linearClassifierOnnx(), "tiny.gguf": buildTinyLlamaGguf() },
    models: stories.skip ? {} : { stories: stories.path },
    config: { ipcSocket: socketPath },
  });
  client = await connect(socketPath);
});
after(async () => {
  client?.close();
  await srv?.cleanup();
  await tmp?.cleanup();
});

test("health and models: what the TypeScript client gets", { skip: python.skip }, async () => {
  const health = await pyJson([socketPath, "health"]);
  assert.deepEqual({ ...health, models_loaded: 0 }, { ...(await client.health()), models_loaded: 0 });
  assert.equal(health.protocol, 1);
  const models = await pyJson([socketPath, "models"]);
  const ts = await client.models();
  assert.deepEqual(models.map((m: any) => m.id).sort(), ts.models.map((m) => m.id).sort());
  const lin = models.find((m: any) => m.id === "lin");
  assert.deepEqual(lin.inputs, [{ name: "x", type: "float32", shape: ["batch", 4] }]);
});

test("infer: float32 bytes from --values, a file and stdin give the TypeScript client's outputs", { skip: python.skip }, async () => {
  const x = [0.5, -1, 2, 0.25, 1, 1, 1, 1];
  const ts = await client.infer("lin", { x: { datatype: "FP32", shape: [2, 4], data: new Float32Array(x) } });
  const want = floatsOf(ts.outputs.probs!.data);
  const file = path.join(tmp.dir, "x.f32");
  await writeFile(file, Buffer.from(new Float32Array(x).buffer));
  const runs = [
    await pyJson([socketPath, "infer", "lin", "x", "2,4", "--values", x.join(",")]),
    await pyJson([socketPath, "infer", "lin", "x", "2,4", file]),
    await pyJson([socketPath, "infer", "lin", "x", "2,4", "-"], {}, Buffer.from(new Float32Array(x).buffer)),
  ];
  for (const r of runs) {
    assert.equal(r.model, "lin");
    assert.deepEqual({ ...r.outputs.probs, data: undefined }, { datatype: "FP32", shape: [2, 3], data: undefined });
    r.outputs.probs.data.forEach((v: number, i: number) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `probs[${i}]`));
  }
  // And what the model's definition says.
  const row0 = linearClassifierForward(W, x.slice(0, 4));
  row0.forEach((w, j) => assert.ok(Math.abs(runs[0].outputs.probs.data[j] - w) < 1e-5));
  const stderr = await pyError([socketPath, "infer", "lin", "x", "1,4", "--values", "1,2,3"], "INVALID_REQUEST");
  assert.match(stderr, /expected 16 raw bytes/);
});

test("generate on the tiny model: whole, streamed and as a chat, the TypeScript client's text", { skip: python.skip }, async () => {
  const ts = await client.generate("tiny", { prompt: "hello", max_tokens: 12, temperature: 0 });
  const whole = await pyJson([socketPath, "generate", "tiny", "hello", "--max-tokens", "12", "--temperature", "0"]);
  assert.deepEqual(whole, ts);
  const streamed = await runPython([socketPath, "generate", "tiny", "hello", "--max-tokens", "12", "--temperature", "0", "--stream"]);
  assert.equal(streamed.code, 0, streamed.stderr);
  const cut = streamed.stdout.trimEnd().lastIndexOf("\n");
  const summary = JSON.parse(streamed.stdout.slice(cut + 1));
  assert.equal(streamed.stdout.slice(0, cut), whole.text);
  assert.deepEqual(summary.usage, whole.usage);
  const chat = await pyJson([socketPath, "generate", "tiny", "hello", "--chat", "--max-tokens", "3", "--temperature", "0"]);
  const tsChat = await client.generate("tiny", { messages: [{ role: "user", content: "hello" }], max_tokens: 3, temperature: 0 });
  assert.equal(chat.text, tsChat.text);
});

test("generate on stories260K at temperature 0: the REST /inference text, whole and streamed token by token", { skip: python.skip || stories.skip }, async () => {
  const rest = await postJson(`${srv.url}/inference`, { model: "stories", prompt: "Once upon a time", max_tokens: 30, temperature: 0 });
  assert.equal(rest.status, 200);
  const want = rest.body.choices[0].text as string;
  const whole = await pyJson([socketPath, "generate", "stories", "Once upon a time", "--max-tokens", "30", "--temperature", "0"]);
  assert.equal(whole.text, want);
  assert.deepEqual(whole.usage, rest.body.usage);
  assert.equal(whole.finish_reason, rest.body.choices[0].finish_reason);
  const streamed = await runPython([socketPath, "generate", "stories", "Once upon a time", "--max-tokens", "30", "--temperature", "0", "--stream"]);
  assert.equal(streamed.code, 0, streamed.stderr);
  const cut = streamed.stdout.trimEnd().lastIndexOf("\n");
  const summary = JSON.parse(streamed.stdout.slice(cut + 1));
  assert.equal(streamed.stdout.slice(0, cut), want);
  assert.ok(summary.pieces > 1, "the text came in pieces");
  assert.deepEqual(summary.usage, rest.body.usage);
});

test("embed: float32 bin vectors, the REST /embeddings vectors", { skip: python.skip }, async () => {
  const texts = ["hello world", "x"];
  const r = await pyJson([socketPath, "embed", "tiny", ...texts]);
  const rest = await postJson(`${srv.url}/embeddings`, { model: "tiny", input: texts });
  assert.equal(rest.status, 200);
  assert.equal(r.embeddings.length, 2);
  assert.equal(r.dimensions, rest.body.data[0].embedding.length);
  assert.deepEqual(r.usage, rest.body.usage);
  r.embeddings.forEach((v: number[], i: number) => {
    const want = rest.body.data[i].embedding as number[];
    assert.equal(v.length, want.length);
    v.forEach((x, j) => assert.ok(Math.abs(x - want[j]!) < 1e-6, `embeddings[${i}][${j}]`));
  });
  const cut = await pyJson([socketPath, "embed", "tiny", "hello world", "--dimensions", "4"]);
  assert.equal(cut.dimensions, 4);
  assert.ok(Math.abs(Math.hypot(...cut.embeddings[0]) - 1) < 1e-5, "unit length");
});

test("errors: the code and message on stderr, exit 1", { skip: python.skip }, async () => {
  assert.match(await pyError([socketPath, "generate", "nope", "hi"], "MODEL_NOT_FOUND"), /nope/);
  await pyError([socketPath, "infer", "tiny", "x", "1,4", "--values", "1,2,3,4"], "UNSUPPORTED_OPERATION");
  await pyError([socketPath, "generate", "tiny", "hi", "--temperature", "5"], "INVALID_REQUEST");
  const gone = await runPython([path.join(tmp.dir, "nobody.sock"), "health"]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /cannot talk to .*nobody\.sock/);
});

test("auth: the token from --token or INFERNO_TOKEN in hello; none, a bad one, or a user's load is refused", { skip: python.skip }, async () => {
  const dir = await tempDir("inferno-ipc-py-auth-");
  const sock = path.join(dir.dir, "a.sock");
  const s = await startTestServer({ files: { "lin.onnx": linearClassifierOnnx() }, config: { auth: true, rateLimit: false, ipcSocket: sock } });
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const db = openDatabase(s.dataDir);
  try {
    const keys = new ApiKeyStore(db);
    const admin = keys.create({ user: "root", name: "admin", role: "admin" }).key;
    const user = keys.create({ user: "alice", name: "alice", role: "user" }).key;
    assert.equal((await pyJson([sock, "--token", user, "models"])).length, 1);
    assert.equal((await pyJson([sock, "models"], { INFERNO_TOKEN: user })).length, 1);
    assert.match(await pyError([sock, "models"], "AUTHENTICATION_FAILED"), /token/);
    await pyError([sock, "--token", "inf_nope_nope", "health"], "AUTHENTICATION_FAILED");
    await pyError([sock, "--token", user, "load", "lin"], "AUTHORIZATION_FAILED");
    assert.deepEqual({ ...(await pyJson([sock, "--token", admin, "load", "lin"])), load_time_ms: 0 }, { model: "lin", status: "loaded", load_time_ms: 0 });
    assert.equal((await pyJson([sock, "--token", admin, "unload", "lin"])).was_loaded, true);
  } finally {
    db.close();
    await s.cleanup();
    await dir.cleanup();
  }
});
