// `inferno pull` against a real HTTP server on 127.0.0.1 that speaks Range / If-Range / ETag and can
// misbehave on demand (cut the connection, ignore ranges, change the file). Needs no model.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { resolveModelSource } from "../../src/pull/model-source.js";
import { createProgressBar, type ProgressBar } from "../../src/pull/progress-bar.js";
import { PullError, pullModel, type PullErrorCode } from "../../src/pull/pull-model.js";

const makeModel = (size: number) => Buffer.concat([Buffer.from("GGUF"), randomBytes(size - 4)]);
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface Behaviour {
  body: Buffer;
  etag: string;
  /** Send headers for the whole body, then only this many bytes, then drop the connection. */
  cutAt: number | null;
  /** Like cutAt, but keep the connection open and silent (for abort tests). */
  stallAt: number | null;
  ignoreRange: boolean;
  ignoreIfRange: boolean;
  requests: { path: string; range: string | undefined; ifRange: string | undefined }[];
}

let state: Behaviour;
let server: http.Server;
let base: string;
let dir: string;

function serveModel(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const ifRange = req.headers["if-range"];
  const honour = range && !state.ignoreRange && (state.ignoreIfRange || !ifRange || ifRange === state.etag);
  const start = honour ? Number(range[1]) : 0;
  const headers = { etag: state.etag, "accept-ranges": "bytes" };
  if (honour && start >= body.length) {
    res.writeHead(416, { ...headers, "content-range": `bytes */${body.length}` }).end();
    return;
  }
  const slice = body.subarray(start);
  res.writeHead(honour ? 206 : 200, {
    ...headers,
    "content-length": slice.length,
    ...(honour ? { "content-range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
  });
  const stop = state.cutAt ?? state.stallAt;
  if (stop === null) {
    res.end(slice);
    return;
  }
  const cut = state.cutAt !== null;
  state.cutAt = state.stallAt = null; // misbehave once
  // The pause lets the client write what it got before it sees the connection drop.
  res.write(slice.subarray(0, stop - start), () => (cut ? setTimeout(() => res.socket?.destroy(), 50) : undefined));
}

before(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    state.requests.push({ path: url, range: req.headers.range, ifRange: req.headers["if-range"] as string | undefined });
    if (url === "/models/tiny.gguf" || url === "/cdn/blob") return serveModel(req, res, state.body);
    if (url === "/models/page.gguf") return serveModel(req, res, Buffer.from("<html>not a model</html>"));
    if (url === "/owner/repo/resolve/main/sub%20dir/tiny.gguf") {
      res.writeHead(302, { location: "/cdn/blob" }).end();
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

beforeEach(async () => {
  state = {
    body: makeModel(2 * 1024 * 1024),
    etag: '"v1"',
    cutAt: null,
    stallAt: null,
    ignoreRange: false,
    ignoreIfRange: false,
    requests: [],
  };
  dir = await mkdtemp(path.join(os.tmpdir(), "inferno-pull-"));
});

afterEach(async () => {
  server.closeAllConnections(); // drops stalled responses so the next test starts clean
  await rm(dir, { recursive: true, force: true });
});

const rejectsWith = (p: Promise<unknown>, code: PullErrorCode) =>
  assert.rejects(p, (err: unknown) => err instanceof PullError && err.code === code);

const partOf = (id: string) => path.join(dir, `.${id}.gguf.part`);

describe("pullModel", () => {
  it("downloads, verifies the sha256 and leaves only the final file", async () => {
    const seen: number[] = [];
    const r = await pullModel({
      source: `${base}/models/tiny.gguf`,
      modelsDir: dir,
      sha256: sha256(state.body).toUpperCase(),
      onProgress: (p) => seen.push(p.received),
    });
    const expected = { path: path.join(dir, "tiny.gguf"), id: "tiny", bytes: state.body.length, resumedFrom: 0 };
    assert.deepEqual(r, { ...expected, sha256: sha256(state.body) });
    assert.ok((await readFile(r.path)).equals(state.body));
    assert.deepEqual(await readdir(dir), ["tiny.gguf"]);
    assert.equal(seen.at(-1), state.body.length);
    assert.equal(state.requests[0]?.range, undefined);
  });

  it("resolves hf: specs against the endpoint and follows the redirect", async () => {
    const source = "hf:owner/repo/sub dir/tiny.gguf";
    const r = await pullModel({ source, modelsDir: dir, name: "my-model", hfEndpoint: base });
    assert.equal(r.path, path.join(dir, "my-model.gguf"));
    assert.equal(r.sha256, sha256(state.body));
    assert.deepEqual(state.requests.map((q) => q.path), ["/owner/repo/resolve/main/sub%20dir/tiny.gguf", "/cdn/blob"]);
  });

  it("keeps the part of an interrupted download and resumes it", async () => {
    state.cutAt = state.body.length / 2;
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir }), "DOWNLOAD_FAILED");
    assert.equal(existsSync(path.join(dir, "tiny.gguf")), false);
    const partial = (await stat(partOf("tiny"))).size;
    assert.ok(partial > 0 && partial <= state.body.length / 2);

    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, sha256: sha256(state.body) });
    assert.equal(r.resumedFrom, partial);
    assert.equal(r.sha256, sha256(state.body));
    assert.deepEqual(state.requests[1], { path: "/models/tiny.gguf", range: `bytes=${partial}-`, ifRange: '"v1"' });
    assert.ok((await readFile(r.path)).equals(state.body));
    assert.deepEqual(await readdir(dir), ["tiny.gguf"]);
  });

  it("starts over when the server ignores the range", async () => {
    state.cutAt = 1000_000;
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir }), "DOWNLOAD_FAILED");
    state.ignoreRange = true;
    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir });
    assert.ok(state.requests[1]?.range);
    assert.equal(r.resumedFrom, 0);
    assert.ok((await readFile(r.path)).equals(state.body));
  });

  it("starts over when the remote file changed (If-Range answered with 200)", async () => {
    state.cutAt = 1000_000;
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir }), "DOWNLOAD_FAILED");
    state.body = makeModel(1024 * 1024 + 7);
    state.etag = '"v2"';
    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, sha256: sha256(state.body) });
    assert.equal(r.resumedFrom, 0);
    assert.equal(r.bytes, state.body.length);
    assert.equal(state.requests.length, 2);
  });

  it("starts over when a 206 comes from a changed file (If-Range not honoured)", async () => {
    state.cutAt = 1000_000;
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir }), "DOWNLOAD_FAILED");
    state.body = makeModel(state.body.length);
    state.etag = '"v2"';
    state.ignoreIfRange = true;
    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, sha256: sha256(state.body) });
    assert.equal(r.resumedFrom, 0);
    assert.equal(state.requests.length, 3); // cut, refused 206, fresh 200
    assert.equal(state.requests[2]?.range, undefined);
  });

  it("finishes from a complete part when the server answers 416", async () => {
    // The final name appears while downloading: the verified part is kept, and force finishes it.
    const final = path.join(dir, "tiny.gguf");
    const opts = { source: `${base}/models/tiny.gguf`, modelsDir: dir };
    const onProgress = () => existsSync(final) || writeFileSync(final, "someone else's model");
    await rejectsWith(pullModel({ ...opts, onProgress }), "ALREADY_EXISTS");
    assert.equal((await stat(partOf("tiny"))).size, state.body.length);
    const r = await pullModel({ ...opts, force: true });
    assert.equal(r.resumedFrom, state.body.length);
    assert.equal(state.requests[1]?.range, `bytes=${state.body.length}-`);
    assert.ok((await readFile(final)).equals(state.body));
    assert.deepEqual(await readdir(dir), ["tiny.gguf"]);
  });

  it("aborting keeps the part for a later resume", async () => {
    state.stallAt = 512 * 1024;
    const ac = new AbortController();
    const onProgress = (p: { received: number }) => void (p.received >= 256 * 1024 && ac.abort());
    await assert.rejects(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, signal: ac.signal, onProgress }), {
      name: "AbortError",
    });
    assert.ok(existsSync(partOf("tiny")));
    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir });
    assert.ok(r.resumedFrom > 0);
    assert.equal(r.sha256, sha256(state.body));
  });

  it("deletes the part on a checksum mismatch", async () => {
    const wrong = "0".repeat(64);
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, sha256: wrong }), "CHECKSUM_MISMATCH");
    assert.deepEqual(await readdir(dir), []);
  });

  it("keeps a short part on a size mismatch (custom fetch)", async () => {
    const headers = { "content-length": String(state.body.length) };
    const fetchImpl = (async () => new Response(state.body.subarray(0, 100), { headers })) as typeof fetch;
    await rejectsWith(pullModel({ source: "https://example.invalid/x.gguf", modelsDir: dir, fetchImpl }), "SIZE_MISMATCH");
    assert.equal((await stat(partOf("x"))).size, 100);
    assert.equal(existsSync(path.join(dir, "x.gguf")), false);
  });

  it("reports HTTP errors with their status", async () => {
    await assert.rejects(pullModel({ source: `${base}/models/missing.gguf`, modelsDir: dir }), (err: unknown) => {
      return err instanceof PullError && err.code === "DOWNLOAD_FAILED" && /404/.test(err.message);
    });
    assert.deepEqual(await readdir(dir), []);
  });

  it("rejects a .gguf that is not GGUF", async () => {
    await rejectsWith(pullModel({ source: `${base}/models/page.gguf`, modelsDir: dir }), "INVALID_MODEL_FILE");
    assert.deepEqual(await readdir(dir), []);
  });

  it("refuses to overwrite an existing model without force", async () => {
    await writeFile(path.join(dir, "tiny.gguf"), "old");
    await rejectsWith(pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir }), "ALREADY_EXISTS");
    assert.equal(state.requests.length, 0);
    const r = await pullModel({ source: `${base}/models/tiny.gguf`, modelsDir: dir, force: true });
    assert.ok((await readFile(r.path)).equals(state.body));
  });

  it("rejects bad names, sources and checksums before any request", async () => {
    const source = `${base}/models/tiny.gguf`;
    for (const name of ["../x", "a/b", "", ".hidden", "a..b", "x".repeat(129)]) {
      await rejectsWith(pullModel({ source, modelsDir: dir, name }), "INVALID_NAME");
    }
    const badSources = ["file:///etc/passwd", "ftp://host/x.gguf", "data:,GGUF", "javascript:alert(1)"];
    badSources.push("http://u:p@host/x.gguf", `${base}/x.bin`, "hf:owner/x.gguf");
    for (const bad of badSources) {
      await rejectsWith(pullModel({ source: bad, modelsDir: dir }), "INVALID_SOURCE");
    }
    await rejectsWith(pullModel({ source, modelsDir: dir, sha256: "abc" }), "INVALID_SOURCE");
    await rejectsWith(pullModel({ source: `${base}/models/bad%20name.gguf`, modelsDir: dir }), "INVALID_NAME");
    assert.equal(state.requests.length, 0);
  });
});

describe("resolveModelSource", () => {
  const hf = "https://huggingface.co";

  it("maps hf: specs to resolve URLs", () => {
    const cases: [string, string, string][] = [
      [
        "hf:TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q4_K_M.gguf",
        `${hf}/TheBloke/Llama-2-7B-GGUF/resolve/main/llama-2-7b.Q4_K_M.gguf`,
        "llama-2-7b.Q4_K_M.gguf",
      ],
      ["hf:o/r@v1.0/sub/dir/m.onnx", `${hf}/o/r/resolve/v1.0/sub/dir/m.onnx`, "m.onnx"],
      ["hf:o/r@refs%2Fpr%2F1/m.gguf", `${hf}/o/r/resolve/refs%2Fpr%2F1/m.gguf`, "m.gguf"],
      ["hf:o/r/a b#c.gguf", `${hf}/o/r/resolve/main/a%20b%23c.gguf`, "a b#c.gguf"],
    ];
    for (const [spec, url, fileName] of cases) {
      const got = resolveModelSource(spec);
      assert.deepEqual({ url: got.url.href, fileName: got.fileName }, { url, fileName }, spec);
    }
  });

  it("uses the given endpoint, keeping a mirror's path prefix", () => {
    const at = (endpoint: string) => resolveModelSource("hf:o/r/m.gguf", endpoint).url.href;
    assert.equal(at("http://127.0.0.1:9/"), "http://127.0.0.1:9/o/r/resolve/main/m.gguf");
    assert.equal(at("https://mirror.example/hf/"), "https://mirror.example/hf/o/r/resolve/main/m.gguf");
  });

  it("decodes the file name of plain URLs and drops the fragment", () => {
    const got = resolveModelSource("https://host/files/My%20Model.gguf?download=1#x");
    assert.equal(got.url.href, "https://host/files/My%20Model.gguf?download=1");
    assert.equal(got.fileName, "My Model.gguf");
  });

  it("rejects malformed specs", () => {
    const bad = ["hf:o/r", "hf:o/r/", "hf:../r/m.gguf", "hf:o/r@/m.gguf", "hf:o/r/../m.gguf", "hf:o/r//m.gguf"];
    bad.push("https://host/", "https://host/a%ZZ.gguf", "not a url");
    for (const spec of bad) assert.throws(() => resolveModelSource(spec), { name: "ModelSourceError" }, spec);
    assert.throws(() => resolveModelSource("hf:o/r/m.gguf", "ftp://mirror"), { name: "ModelSourceError" });
  });
});

describe("createProgressBar", () => {
  const capture = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, columns: 100, write: (s: string) => out.push(s) > 0 } };
  };

  it("logs at most every 10% when not a terminal", () => {
    const { out, stream } = capture(false);
    let t = 0;
    const bar = createProgressBar(stream, () => t);
    for (let i = 0; i <= 1000; i++, t += 10) bar.update({ received: i * 1000, total: 1_000_000, resumedFrom: 0 });
    bar.done();
    assert.equal(out.length, 11);
    assert.match(out.at(-1) ?? "", /^100% {2}976\.6 KiB \/ 976\.6 KiB/);
  });

  it("redraws one line at most ten times a second on a terminal", () => {
    const { out, stream } = capture(true);
    let t = 0;
    const bar: ProgressBar = createProgressBar(stream, () => t);
    const MiB = 1024 * 1024;
    for (let i = 0; i <= 100; i++, t += 20) bar.update({ received: i * MiB, total: 100 * MiB, resumedFrom: 0 });
    bar.done();
    assert.ok(out.length <= 23, `${out.length} writes`);
    assert.ok(out.slice(0, -1).every((s) => s.startsWith("\r")));
    assert.match(out.at(-2) ?? "", /100% \[#+\] {2}100\.0 MiB \/ 100\.0 MiB/);
    assert.equal(out.at(-1), "\n");
  });

  it("accepts process streams", () => {
    const typed: (s: NodeJS.WriteStream) => ProgressBar = createProgressBar;
    assert.equal(typeof typed, "function");
  });
});
