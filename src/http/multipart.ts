// A small multipart/form-data parser (RFC 7578) for uploads: the whole body is already in memory,
// capped by the route's body limit, and is split on its boundary. Text fields become strings and a
// part with a filename becomes a file; part count, header size, field size and file count are bounded.
import { InfernoError } from "../errors/catalogue.js";

/** A file part; `data` is a view into the request body. */
export interface MultipartFile {
  filename: string;
  contentType: string | undefined;
  data: Buffer;
}

/** Parts by field name: a text field's value or a file. */
export type MultipartBody = Record<string, string | MultipartFile>;

export interface MultipartLimits {
  maxParts: number;
  maxFiles: number;
  maxFieldBytes: number;
  maxHeaderBytes: number;
}

const DEFAULT_LIMITS: MultipartLimits = { maxParts: 32, maxFiles: 1, maxFieldBytes: 64 * 1024, maxHeaderBytes: 8 * 1024 };
const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

const bad = (message: string) => new InfernoError("INVALID_REQUEST", `invalid multipart body: ${message}`);

/** The boundary of a `multipart/form-data` content type (RFC 2046: 1-70 characters). */
export function boundaryOf(contentType: string | undefined): string {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType ?? "");
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary || !/^multipart\/form-data\s*(;|$)/i.test(contentType ?? "")) throw bad("expected multipart/form-data with a boundary");
  return boundary;
}

/** `name="value"` parameters of a header value; quoted values may escape characters with a backslash. */
function headerParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const m of value.matchAll(/;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g)) {
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!.trim();
    params.set(m[1]!.toLowerCase(), raw);
  }
  return params;
}

/** RFC 5987 `filename*=UTF-8''...` wins over `filename`, as RFC 6266 says. */
function filenameOf(params: Map<string, string>): string | undefined {
  const extended = params.get("filename*");
  const m = extended ? /^utf-8''(.*)$/i.exec(extended) : null;
  if (m) {
    try {
      return decodeURIComponent(m[1]!);
    } catch {
      throw bad("filename* is not valid percent-encoded UTF-8");
    }
  }
  return params.get("filename");
}

function parseHeaders(text: string): { name: string; filename: string | undefined; contentType: string | undefined } {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of text.split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw bad("malformed part header");
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === "content-disposition") disposition = value;
    else if (key === "content-type") contentType = value;
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw bad("every part needs Content-Disposition: form-data");
  const params = headerParams(disposition);
  const name = params.get("name");
  if (!name) throw bad("a part has no name");
  return { name, filename: filenameOf(params), contentType };
}

/** Splits a multipart body into its fields and files; throws INVALID_REQUEST on anything malformed or over a limit. */
export function parseMultipart(body: Buffer, boundary: string, limits: Partial<MultipartLimits> = {}): MultipartBody {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const delimiter = Buffer.from(`--${boundary}`);
  const between = Buffer.concat([CRLF, delimiter]);
  const out: MultipartBody = Object.create(null) as MultipartBody;
  let parts = 0;
  let files = 0;
  // The first delimiter may follow a preamble, which is ignored.
  let pos = body.subarray(0, delimiter.length).equals(delimiter) ? 0 : body.indexOf(between);
  if (pos < 0) throw bad("no part starts with the boundary");
  if (pos > 0) pos += CRLF.length;
  for (;;) {
    let p = pos + delimiter.length;
    if (body[p] === 0x2d && body[p + 1] === 0x2d) return out; // "--": the closing delimiter
    while (body[p] === 0x20 || body[p] === 0x09) p++; // transport padding
    if (body[p] !== 0x0d || body[p + 1] !== 0x0a) throw bad("a boundary line does not end with CRLF");
    if (++parts > lim.maxParts) throw bad(`more than ${lim.maxParts} parts`);
    // A part with no headers starts right away with the blank line, sharing the boundary line's CRLF.
    const headerEnd = body.indexOf(HEADER_END, p);
    if (headerEnd < 0 || headerEnd - p > lim.maxHeaderBytes) throw bad("a part's headers are missing or too long");
    const headers = parseHeaders(body.toString("utf8", p + CRLF.length, headerEnd));
    const start = headerEnd + HEADER_END.length;
    const end = body.indexOf(between, start);
    if (end < 0) throw bad("the body ends before its closing boundary");
    if (headers.name in out) throw bad(`the field '${headers.name}' appears twice`);
    const data = body.subarray(start, end);
    if (headers.filename !== undefined) {
      if (++files > lim.maxFiles) throw bad(`more than ${lim.maxFiles} file(s)`);
      out[headers.name] = { filename: headers.filename, contentType: headers.contentType, data };
    } else {
      if (data.length > lim.maxFieldBytes) throw bad(`the field '${headers.name}' is over ${lim.maxFieldBytes} bytes`);
      out[headers.name] = data.toString("utf8");
    }
    pos = end + CRLF.length;
  }
}
