// The `inferno` CLI as users run it: built dist/src/cli.js in a child process, in a temp cwd, with no
// INFERNO_* variables inherited. Needs no model, except one test that reads stories260K.gguf (skipped
// when ../shared/models is absent).
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { buildTinyLlamaGguf, writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { runCli as runCliIn, spawnCli as spawnCliIn } from "../helpers/cli.js";
import { realModel, repoRoot, tempDir } from "../helpers/paths.js";

let work: string;
let cleanup: () => Promise<void>;

before(async () => {
  ({ dir: work, cleanup } = await tempDir("inferno-cli-"));
});
after(() => cleanup());

const spawnCli = (args: string[], env: Record<string, string> = {}): ChildProcess => spawnCliIn(args, { cwd: work, env });
const runCli = (args: string[], env: Record<string, string> = {}) => runCliIn(args, { cwd: work, env });

const STACK_LINE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;

describe("usage and exit codes", { concurrency: true }, () => {
  it("--version prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    const r = await runCli(["--version"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it("--help exits 0 and lists the commands", async () => {
    const r = await runCli(["--help"]);
    assert.equal(r.code, 0);
    for (const word of ["serve", "models list", "models info", "pull"]) assert.ok(r.stdout.includes(word), word);
  });

  it("no arguments prints the usage and exits 2", async () => {
    const r = await runCli([]);
    assert.equal(r.code, 2);
    assert.match(r.stdout + r.stderr, /Usage:/);
  });

  it("an unknown command exits 2", async () => {
    const r = await runCli(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });

  it("an unknown flag exits 2", async () => {
    const r = await runCli(["serve", "--no-such-flag"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--no-such-flag/);
  });

  it("models without a subcommand exits 2", async () => {
    const r = await runCli(["models", "frob"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /models list/);
  });

  it("serve --port abc exits 2 naming the port", async () => {
    const r = await runCli(["serve", "--port", "abc"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"port"/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  it("INFERNO_THREADS=0 serve exits 2 naming threads", async () => {
    const r = await runCli(["serve"], { INFERNO_THREADS: "0" });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"threads"/);
    assert.match(r.stderr, /INFERNO_THREADS/);
  });
});

describe("models list", { concurrency: true }, () => {
  let modelsDir: string;
  let tinySize: number;

  before(async () => {
    modelsDir = path.join(work, "list-models");
    await mkdir(modelsDir);
    await writeTinyLlamaGguf(path.join(modelsDir, "tiny.gguf"));
    tinySize = (await stat(path.join(modelsDir, "tiny.gguf"))).size;
    await writeTinyLlamaGguf(path.join(modelsDir, "bad name.gguf"));
    await writeTinyLlamaGguf(path.join(modelsDir, ".hidden.gguf"));
    await writeFile(path.join(modelsDir, "notes.txt"), "not a model");
    await writeFile(path.join(modelsDir, ".x.gguf.part"), "GGUF half a download");
  });

  it("shows only the valid model file", async () => {
    const r = await runCli(["models", "list", "--models-dir", modelsDir]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split("\n");
    assert.equal(rows.length, 2, r.stdout); // header + tiny
    assert.match(rows[0]!, /^ID\s+TYPE\s+SIZE/);
    assert.match(rows[1]!, /^tiny\s+gguf\s/);
    for (const hidden of ["bad name", "notes", "hidden", ".x"]) assert.ok(!r.stdout.includes(hidden), hidden);
  });

  it("--json gives id, type and size_bytes", async () => {
    const r = await runCli(["models", "list", "--json", "--models-dir", modelsDir]);
    assert.equal(r.code, 0, r.stderr);
    const models = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(models.map((m) => [m.id, m.type, m.size_bytes, m.source]), [["tiny", "gguf", tinySize, "models-dir"]]);
  });

  it("takes the models dir from INFERNO_MODELS_DIR too", async () => {
    const r = await runCli(["models", "list", "--json"], { INFERNO_MODELS_DIR: modelsDir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Array<{ id: string }>).map((m) => m.id), ["tiny"]);
  });

  it("an empty or missing models dir lists the demo models the server would serve", async () => {
    const r = await runCli(["models", "list", "--json", "--models-dir", "nothing-here", "--data-dir", path.join(work, "list-data")]);
    assert.equal(r.code, 0, r.stderr);
    const models = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(models.map((m) => [m.id, m.type, m.source]), [["mnist-8", "onnx", "demo"], ["stories260K", "gguf", "demo"]]);
    assert.ok(!existsSync(path.join(work, "list-data")), "listing creates no data dir");
  });

  it("with demo models off, an empty or missing models dir is a friendly message, not an error", async () => {
    const r = await runCli(["models", "list", "--models-dir", "nothing-here", "--demo-models", "false"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no models in .*nothing-here/);
    assert.equal(r.stderr, "");
  });
});

describe("models info", { concurrency: true }, () => {
  let plain: string;
  let templated: string;

  before(async () => {
    plain = path.join(work, "info-plain.gguf");
    templated = path.join(work, "info-templated.gguf");
    await writeTinyLlamaGguf(plain, { contextLength: 384 });
    await writeTinyLlamaGguf(templated, { chatTemplate: "{% for m in messages %}{{ m.content }}{% endfor %}" });
  });

  it("prints the header facts of a GGUF file", async () => {
    const r = await runCli(["models", "info", plain]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^architecture\s+llama$/m);
    assert.match(r.stdout, /^context length\s+384$/m);
    assert.match(r.stdout, /^chat template\s+no$/m);
  });

  it("--json parses and has the architecture, parameters and chat template flag", async () => {
    const r = await runCli(["models", "info", plain, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(info.architecture, "llama");
    assert.equal(info.context_length, 384);
    assert.ok(typeof info.parameters === "number" && info.parameters > 0, `parameters: ${String(info.parameters)}`);
    assert.equal(info.has_chat_template, false);
    assert.equal(info.file, plain);
  });

  it("sees a chat template when the file has one", async () => {
    const r = await runCli(["models", "info", templated, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Record<string, unknown>).has_chat_template, true);
  });

  it("a corrupt file exits 1 with INVALID_MODEL_FILE and no stack trace", async () => {
    const bytes = randomBytes(4096);
    bytes[0] = 0; // never "GGUF" by chance
    const corrupt = path.join(work, "x.gguf");
    await writeFile(corrupt, bytes);
    const r = await runCli(["models", "info", corrupt]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /INVALID_MODEL_FILE/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
    assert.equal(r.stdout, "");
  });

  it("a missing file exits 1", async () => {
    const r = await runCli(["models", "info", "does-not-exist.gguf"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does-not-exist\.gguf/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  const stories = realModel("stories260K.gguf");
  it("reads stories260K.gguf (real model)", { skip: stories.skip }, async () => {
    const r = await runCli(["models", "info", stories.path, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(info.architecture, "llama");
    assert.equal(info.context_length, 2048);
  });
});

describe("pull", { concurrency: true }, () => {
  const body = buildTinyLlamaGguf({ seed: 7 });
  const sha = createHash("sha256").update(body).digest("hex");
  const served: string[] = [];
  let server: http.Server;
  let base: string;

  before(async () => {
    server = http.createServer((req, res) => {
      served.push(req.url ?? "");
      if (req.url === "/tiny.gguf" || req.url === "/owner/repo/resolve/main/tiny.gguf") {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length }).end(body);
        return;
      }
      res.writeHead(404).end("not found");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("downloads a URL into the models dir and verifies its sha256", async () => {
    const dir = path.join(work, "pull-ok");
    const r = await runCli(["pull", `${base}/tiny.gguf`, "--models-dir", dir, "--sha256", sha, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(result.id, "tiny");
    assert.equal(result.sha256, sha);
    assert.ok((await readFile(path.join(dir, "tiny.gguf"))).equals(body));
    assert.deepEqual(await readdir(dir), ["tiny.gguf"]);
  });

  it("a wrong sha256 exits 1 with CHECKSUM_MISMATCH and leaves no model behind", async () => {
    const dir = path.join(work, "pull-bad-sha");
    const r = await runCli(["pull", `${base}/tiny.gguf`, "--models-dir", dir, "--sha256", "0".repeat(64)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CHECKSUM_MISMATCH/);
    assert.equal(existsSync(path.join(dir, "tiny.gguf")), false);
    assert.deepEqual((await readdir(dir).catch(() => [])).filter((f) => f.includes("tiny")), []);
  });

  it("resolves hf:OWNER/REPO/FILE against INFERNO_HF_ENDPOINT", async () => {
    const dir = path.join(work, "pull-hf");
    const r = await runCli(["pull", "hf:owner/repo/tiny.gguf", "--models-dir", dir], { INFERNO_HF_ENDPOINT: base });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(served.includes("/owner/repo/resolve/main/tiny.gguf"), served.join(", "));
    assert.ok((await readFile(path.join(dir, "tiny.gguf"))).equals(body));
  });

  it("refuses a file: URL as a usage error", async () => {
    const dir = path.join(work, "pull-file-url");
    const r = await runCli(["pull", "file:///etc/passwd", "--models-dir", dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /INVALID_SOURCE/);
    assert.equal(existsSync(dir), false);
  });
});

interface Served {
  child: ChildProcess;
  url: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
  /** Resolves with the first JSON log line whose msg is `msg` (seen before or after the call). */
  logLine: (msg: string) => Promise<Record<string, unknown>>;
  /** Every JSON log line so far. */
  logged: Array<Record<string, unknown>>;
}

/** Starts `inferno serve` and resolves once its JSON log says where it listens. */
async function startServe(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawnCli(["serve", "--port", "0", "--grpc-port", "0", "--log-level", "info", ...args], { INFERNO_LOG_PRETTY: "false", ...env });
  const logged: Array<Record<string, unknown>> = [];
  const waiters: Array<{ msg: string; resolve: (line: Record<string, unknown>) => void }> = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 15 s; stderr: ${stderr}`)), 15_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      let msg: unknown;
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        msg = parsed.msg;
        logged.push(parsed);
        for (const w of waiters.filter((w) => w.msg === msg)) w.resolve(parsed);
      } catch {
        return reject(new Error(`stdout line is not JSON: ${line}`));
      }
      const m = typeof msg === "string" ? /^Server listening at (http:\/\/\S+)$/.exec(msg) : null;
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exit.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
  const logLine = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = logged.find((l) => l.msg === msg);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => reject(new Error(`no "${msg}" log line within 15 s; stderr: ${stderr}`)), 15_000);
      waiters.push({ msg, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  return { child, url, exit, stderr: () => stderr, logLine, logged };
}

/** SIGTERM, then the exit code, failing when the process takes more than 5 s. */
async function stop(s: Served): Promise<number | null> {
  s.child.kill("SIGTERM");
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no exit 5 s after SIGTERM")), 5_000).unref());
  return (await Promise.race([s.exit, timeout])).code;
}

const killOnEnd = (s: Served) => () => {
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
};

describe("serve", () => {
  it("listens, answers /health, refuses a busy port, and exits 0 on SIGTERM", async (t) => {
    const s = await startServe(["--models-dir", path.join(work, "serve-models"), "--data-dir", path.join(work, "serve-data")]);
    t.after(killOnEnd(s));
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const res = await fetch(`${s.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, "healthy");

    const port = new URL(s.url).port;
    const second = await runCli(["serve", "--port", port, "--log-level", "silent", "--data-dir", path.join(work, "serve-data-2")]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    assert.match(second.stderr, /EADDRINUSE|address already in use/);
    assert.doesNotMatch(second.stderr, STACK_LINE);

    // gRPC listens beside HTTP (logged once listening); a busy gRPC port is a start-up error too.
    const grpc = s.logged.find((l) => typeof l.msg === "string" && l.msg.startsWith("gRPC listening at grpc://127.0.0.1:"));
    assert.ok(grpc, "the gRPC listener is logged");
    const grpcBusy = await runCli(["serve", "--port", "0", "--grpc-port", String(grpc.port), "--log-level", "silent", "--data-dir", path.join(work, "serve-data-3")]);
    assert.equal(grpcBusy.code, 1);
    assert.match(grpcBusy.stderr, new RegExp(`cannot start gRPC on 127\\.0\\.0\\.1:${String(grpc.port)}`));
    assert.doesNotMatch(grpcBusy.stderr, STACK_LINE);

    assert.equal(await stop(s), 0);
  });

  it("runs with one libuv pool thread unless UV_THREADPOOL_SIZE says otherwise, and reports its llama.cpp threads", async (t) => {
    // The entry (dist/src/main.cjs) must set the pool size before the ES modules load: see src/main.cts.
    const dirs = (name: string) => ["--models-dir", path.join(work, `${name}-models`), "--data-dir", path.join(work, `${name}-data`)];
    const s = await startServe([...dirs("uv-default"), "--threads", "1", "--batch-threads", "2"]);
    t.after(killOnEnd(s));
    const ready = await s.logLine("llama.cpp backend ready");
    assert.equal(ready.uvThreadpoolSize, "1");
    assert.equal(ready.threads, 1);
    assert.equal(ready.batchThreads, 2);
    assert.equal(await stop(s), 0);

    const mine = await startServe(dirs("uv-user"), { UV_THREADPOOL_SIZE: "3", INFERNO_BATCH_THREADS: "3" });
    t.after(killOnEnd(mine));
    const readyMine = await mine.logLine("llama.cpp backend ready");
    assert.equal(readyMine.uvThreadpoolSize, "3");
    assert.equal(readyMine.batchThreads, 3);
    assert.equal(await stop(mine), 0);
  });

  it("keeps a registration across restarts, and only registers under an allowed root", async (t) => {
    const modelsDir = path.join(work, "restart-models");
    const dataDir = path.join(work, "restart-data");
    const root = path.join(work, "restart-root");
    await mkdir(root);
    const file = path.join(root, "outside.gguf");
    await writeTinyLlamaGguf(file);
    const dirs = ["--models-dir", modelsDir, "--data-dir", dataDir];
    const register = (url: string) =>
      fetch(`${url}/models`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "reg1", path: file }),
      });

    const first = await startServe(dirs);
    t.after(killOnEnd(first));
    const refused = await register(first.url);
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "PATH_NOT_ALLOWED");
    assert.equal(await stop(first), 0);

    const second = await startServe([...dirs, "--model-root", root]);
    t.after(killOnEnd(second));
    const created = await register(second.url);
    assert.equal(created.status, 201, await created.clone().text());
    assert.equal(((await created.json()) as { id: string }).id, "reg1");
    assert.equal(await stop(second), 0);

    const third = await startServe([...dirs, "--model-root", root]);
    t.after(killOnEnd(third));
    const list = (await (await fetch(`${third.url}/models`)).json()) as { models: Array<{ id: string; source: string }> };
    assert.deepEqual(list.models.map((m) => [m.id, m.source]), [["reg1", "registered"]]);
    assert.equal(await stop(third), 0);

    // The CLI reads registrations from the same database.
    const listed = await runCli(["models", "list", "--json", ...dirs, "--model-root", root]);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(rows.map((m) => [m.id, m.source, m.missing]), [["reg1", "registered", false]]);
  });
});
