// `inferno pull`: downloads a model file into the models dir.
//
// The bytes go to a hidden partial file next to the final one (".ID.EXT.part", invisible to model
// discovery and on the same filesystem, so the final rename is atomic). A sidecar (".ID.EXT.part.json")
// remembers which remote file the part belongs to (URL, ETag / Last-Modified, total size); a later run
// resumes with a Range request only when the remote file is still the same one, and starts over
// otherwise. Nothing ever appears under the final name before it is complete and verified.
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { isValidModelId, modelTypeOf } from "../registry/model-paths.js";
import { ModelSourceError, resolveModelSource } from "./model-source.js";

/**
 * Why a pull failed. INVALID_SOURCE also covers a malformed sha256 option. INVALID_MODEL_FILE: the
 * download is not a model of its extension's kind (a ".gguf" not starting with "GGUF", or an empty
 * file); the part is deleted.
 */
export type PullErrorCode =
  | "INVALID_SOURCE" | "INVALID_NAME" | "DOWNLOAD_FAILED" | "SIZE_MISMATCH" | "CHECKSUM_MISMATCH" | "ALREADY_EXISTS"
  | "INVALID_MODEL_FILE";

/** A pull that failed for a reason the CLI can explain; other errors (e.g. EACCES) pass through. */
export class PullError extends Error {
  override readonly name = "PullError";
  constructor(readonly code: PullErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `received` counts every byte of the file so far, including the `resumedFrom` bytes already on disk. */
export interface PullProgress {
  received: number;
  total: number | null;
  resumedFrom: number;
}

export interface PullOptions {
  /** An http(s) URL or hf:OWNER/REPO[@REVISION]/FILE (see model-source.ts). */
  source: string;
  modelsDir: string;
  /** Model id; defaults to the remote file name without its extension. */
  name?: string;
  /** Expected sha256, 64 hex digits in either case. */
  sha256?: string;
  /** Replace an existing model file of the same id. */
  force?: boolean;
  hfEndpoint?: string;
  /** Aborting rejects with the AbortError and keeps the part for a later resume. */
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  /** Called once the last byte is in, before the size, sha256 and file-type checks and the rename. */
  onVerifying?: () => void;
  fetchImpl?: typeof fetch;
}

export interface PullResult {
  path: string;
  id: string;
  bytes: number;
  sha256: string;
  resumedFrom: number;
}

type PartFiles = { final: string; part: string; meta: string };
/** What the sidecar records about the remote file a part belongs to. */
type Sidecar = { url: string; etag: string | null; lastModified: string | null; total: number | null };
type Resume = { offset: number; meta: Sidecar };
type Downloaded = { bytes: number; total: number | null; sha256: string; resumedFrom: number };

const SHA256_HEX = /^[0-9a-f]{64}$/i;
const GGUF_MAGIC = Buffer.from("GGUF", "latin1");

export async function pullModel(opts: PullOptions): Promise<PullResult> {
  const { url, id, ext } = planPull(opts);
  const dir = path.resolve(opts.modelsDir);
  const files: PartFiles = {
    final: path.join(dir, id + ext),
    part: path.join(dir, `.${id}${ext}.part`),
    meta: path.join(dir, `.${id}${ext}.part.json`),
  };
  if (path.dirname(files.final) !== dir) throw new PullError("INVALID_NAME", `model id "${id}" escapes the models dir`);
  if (!opts.force) await refuseExisting(files.final);
  await mkdir(dir, { recursive: true });

  const got = await download(url, files, opts);
  opts.onVerifying?.();
  if (got.total !== null && got.bytes !== got.total) {
    // A short part can still be resumed; a long one cannot be the file the server described.
    if (got.bytes > got.total) await removePartial(files);
    throw new PullError("SIZE_MISMATCH", `received ${got.bytes} bytes, the server announced ${got.total}`);
  }
  const expected = opts.sha256?.toLowerCase();
  if (expected !== undefined && got.sha256 !== expected) {
    await removePartial(files); // resuming a corrupt file would only reproduce the mismatch
    throw new PullError("CHECKSUM_MISMATCH", `sha256 is ${got.sha256}, expected ${expected}`);
  }
  await checkMagic(files, ext);

  await syncPath(files.part, "r+");
  // Checked again: the final name may have appeared during a long download. The verified part is
  // kept, so re-running with force finishes without downloading again.
  if (!opts.force) await refuseExisting(files.final);
  await rename(files.part, files.final);
  await rm(files.meta, { force: true });
  await syncPath(dir, "r").catch(() => {}); // durability of the rename; not every platform can fsync a dir
  return { path: files.final, id, bytes: got.bytes, sha256: got.sha256, resumedFrom: got.resumedFrom };
}

/** What a pull would fetch and the model id and extension it would write, or the PullError refusing it. */
export function planPull(opts: Pick<PullOptions, "source" | "name" | "sha256" | "hfEndpoint">): { url: URL; id: string; ext: string } {
  let source;
  try {
    source = resolveModelSource(opts.source, opts.hfEndpoint);
  } catch (err) {
    if (err instanceof ModelSourceError) throw new PullError("INVALID_SOURCE", err.message, { cause: err });
    throw err;
  }
  const type = modelTypeOf(source.fileName);
  if (!type) throw new PullError("INVALID_SOURCE", `"${source.fileName}" is not a .gguf or .onnx file`);
  const ext = `.${type}`;
  const id = opts.name ?? source.fileName.slice(0, -ext.length);
  if (!isValidModelId(id)) {
    const hint = opts.name === undefined ? " (derived from the file name; pass a name)" : "";
    throw new PullError("INVALID_NAME", `invalid model id "${id}"${hint}: use letters, digits, ".", "_", "-"`);
  }
  if (opts.sha256 !== undefined && !SHA256_HEX.test(opts.sha256)) {
    throw new PullError("INVALID_SOURCE", "sha256 must be 64 hexadecimal digits");
  }
  return { url: source.url, id, ext };
}

async function download(url: URL, files: PartFiles, opts: PullOptions): Promise<Downloaded> {
  const fetchImpl = opts.fetchImpl ?? fetch;
  let resume = await loadResume(url, files);
  // At most two requests: a resume attempt, then (if the part turns out stale) a fresh download.
  for (;;) {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (resume) {
      headers["range"] = `bytes=${resume.offset}-`;
      const validator = ifRangeValidator(resume.meta);
      if (validator) headers["if-range"] = validator;
    }
    let res: Response;
    try {
      res = await fetchImpl(url, { headers, signal: opts.signal });
    } catch (err) {
      throw downloadFailed(err, opts.signal);
    }
    const encoding = res.headers.get("content-encoding");
    if (res.ok && encoding && encoding !== "identity") {
      await discard(res);
      // fetch would decode it, so sizes and byte ranges would no longer describe the stored file.
      throw new PullError("DOWNLOAD_FAILED", `server sent a ${encoding}-encoded body; model files must be served as-is`);
    }

    if (resume && (res.status === 206 || res.status === 416)) {
      const range = parseContentRange(res.headers.get("content-range"));
      const total = range?.total ?? resume.meta.total;
      if (res.status === 416 && total === resume.offset) {
        await discard(res); // the part already holds the whole file
        opts.onProgress?.({ received: resume.offset, total, resumedFrom: resume.offset });
        const sha256 = (await hashFile(files.part)).digest("hex");
        return { bytes: resume.offset, total, sha256, resumedFrom: resume.offset };
      }
      if (res.status === 206 && range?.start === resume.offset && sameRemoteFile(resume.meta, res, total)) {
        return streamToPart(res, files, resume.offset, total, opts);
      }
      await discard(res);
      await removePartial(files); // the part belongs to another version of the file
      resume = null;
      continue;
    }
    if (res.status !== 200) {
      await discard(res);
      const where = `${url.origin}${url.pathname}`; // no query: signed URLs carry tokens there
      throw new PullError("DOWNLOAD_FAILED", `${where} answered HTTP ${res.status} ${res.statusText}`.trim());
    }
    // A 200 carries the whole file, also when a range was asked for (the server ignored it, or the
    // If-Range validator no longer matched): start the part over from these bytes.
    const total = parseLength(res.headers.get("content-length"));
    const etag = res.headers.get("etag");
    const meta: Sidecar = { url: url.href, etag, lastModified: res.headers.get("last-modified"), total };
    await writeFile(files.meta, JSON.stringify(meta));
    return streamToPart(res, files, 0, total, opts);
  }
}

async function streamToPart(res: Response, files: PartFiles, offset: number, total: number | null, opts: PullOptions) {
  const hash = offset > 0 ? await hashFile(files.part) : createHash("sha256");
  let received = offset;
  const report = () => opts.onProgress?.({ received, total, resumedFrom: offset });
  report();
  const body = res.body ? Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) : Readable.from([]);
  try {
    await pipeline(
      body,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          received += chunk.length;
          report();
          yield chunk;
        }
      },
      createWriteStream(files.part, { flags: offset > 0 ? "a" : "w" }),
      { signal: opts.signal },
    );
  } catch (err) {
    throw downloadFailed(err, opts.signal);
  }
  return { bytes: received, total, sha256: hash.digest("hex"), resumedFrom: offset };
}

/** A part is resumable only with a sidecar naming the same URL; anything else is cleared. */
async function loadResume(url: URL, files: PartFiles): Promise<Resume | null> {
  const [meta, size] = await Promise.all([
    readSidecar(files.meta),
    stat(files.part).then((s) => s.size, () => null),
  ]);
  if (meta && meta.url === url.href && size !== null && size > 0 && (meta.total === null || size <= meta.total)) {
    return { offset: size, meta };
  }
  if (meta || size !== null) await removePartial(files);
  return null;
}

async function readSidecar(file: string): Promise<Sidecar | null> {
  try {
    const v = JSON.parse(await readFile(file, "utf8")) as Partial<Sidecar>;
    const optString = (x: unknown) => (typeof x === "string" ? x : null);
    if (typeof v.url !== "string") return null;
    const total = typeof v.total === "number" && Number.isSafeInteger(v.total) && v.total >= 0 ? v.total : null;
    return { url: v.url, etag: optString(v.etag), lastModified: optString(v.lastModified), total };
  } catch {
    return null; // missing or unreadable: the part cannot be trusted
  }
}

// If-Range only accepts a strong validator; a weak ETag falls back to Last-Modified.
function ifRangeValidator(meta: Sidecar): string | null {
  if (meta.etag && !meta.etag.startsWith("W/")) return meta.etag;
  return meta.lastModified;
}

/** Catches servers that answer a range without honouring If-Range. */
function sameRemoteFile(meta: Sidecar, res: Response, total: number | null): boolean {
  const etag = res.headers.get("etag");
  const lastModified = res.headers.get("last-modified");
  if (meta.total !== null && total !== meta.total) return false;
  if (meta.etag && etag && meta.etag.replace(/^W\//, "") !== etag.replace(/^W\//, "")) return false;
  if (meta.lastModified && lastModified && meta.lastModified !== lastModified) return false;
  return true;
}

/** "bytes START-END/TOTAL" (206) or "bytes * /TOTAL" (416); TOTAL may be "*". */
function parseContentRange(header: string | null): { start: number | null; total: number | null } | null {
  const m = header?.match(/^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i);
  if (!m) return null;
  return { start: m[1] === undefined ? null : Number(m[1]), total: m[2] === "*" ? null : Number(m[2]) };
}

function parseLength(header: string | null): number | null {
  return header !== null && /^\d+$/.test(header) ? Number(header) : null;
}

async function hashFile(file: string): Promise<Hash> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash;
}

async function checkMagic(files: PartFiles, ext: string): Promise<void> {
  const chunks: Buffer[] = [];
  const stream = createReadStream(files.part, { start: 0, end: GGUF_MAGIC.length - 1 });
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const head = Buffer.concat(chunks);
  // ONNX is a bare protobuf with no magic number, so only emptiness can be ruled out there.
  const bad = head.length === 0 ? "the file is empty" : null;
  if (bad || (ext === ".gguf" && !head.equals(GGUF_MAGIC))) {
    await removePartial(files);
    throw new PullError("INVALID_MODEL_FILE", `downloaded file is not a ${ext} model: ${bad ?? "it does not start with GGUF"}`);
  }
}

async function refuseExisting(final: string): Promise<void> {
  const exists = await lstat(final).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? false : Promise.reject(err)),
  );
  if (exists) throw new PullError("ALREADY_EXISTS", `${final} already exists (use force to replace it)`);
}

async function syncPath(p: string, flags: "r" | "r+"): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function removePartial(files: PartFiles): Promise<void> {
  await Promise.all([rm(files.part, { force: true }), rm(files.meta, { force: true })]);
}

/** Frees the connection of a response whose body is not wanted. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

function downloadFailed(err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return err; // the caller asked for it; the part stays for a resume
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : "";
  const message = err instanceof Error ? err.message : String(err);
  return new PullError("DOWNLOAD_FAILED", `download failed: ${message}${cause}`, { cause: err });
}
