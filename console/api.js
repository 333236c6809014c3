// Every call to the server goes through here: the API key, coded errors, and the stream readers.

const KEY = "inferno.apiKey";

/** The API key lives in this tab's sessionStorage only: never localStorage, never a cookie. */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** A coded API error: `code` as the server sent it (AUTHENTICATION_FAILED, PATH_NOT_ALLOWED, ...). */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Paths are relative (no leading slash), so the console also works behind a proxy under a sub-path. */
export const apiUrl = (path) => new URL(path, document.baseURI).href;

/** An error body in any of the server's envelopes: native {error:{code,message}}, OpenAI (lower-case code), Ollama/KServe {error:"..."}. */
export function errorFrom(status, body) {
  const e = body?.error;
  if (e && typeof e === "object") {
    return new ApiError(status, String(e.code ?? e.type ?? `HTTP_${status}`).toUpperCase(), e.message ?? "request failed", e.details);
  }
  if (typeof e === "string") return new ApiError(status, `HTTP_${status}`, e);
  return new ApiError(status, `HTTP_${status}`, `the server answered ${status}`);
}

async function errorOf(res) {
  const text = await res.text().catch(() => "");
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text ? { error: text.slice(0, 300) } : undefined;
  }
  return errorFrom(res.status, body);
}

let askForKey;
let pending;

/** The auth UI registers how to ask for a key; it resolves once a working key is stored. */
export function onKeyNeeded(ask) {
  askForKey = ask;
}

// Concurrent 401s share one prompt; a request whose key was already replaced just retries.
function needKey(error, sentKey) {
  if (apiKey.get() !== sentKey) return Promise.resolve();
  apiKey.clear();
  pending ??= askForKey(sentKey ? error : undefined).finally(() => (pending = undefined));
  return pending;
}

export function authHeaders(key = apiKey.get()) {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/**
 * Calls the API; the JSON answer, or with `raw` the Response (for streams). A non-2xx answer throws an
 * ApiError; a 401 asks for a key and tries again.
 */
export async function api(path, { method = "GET", body, signal, raw = false } = {}) {
  for (;;) {
    const key = apiKey.get();
    const headers = { ...authHeaders(key), ...(body === undefined ? {} : { "content-type": "application/json" }) };
    const res = await fetch(apiUrl(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    if (res.status === 401 && askForKey) {
      await needKey(await errorOf(res), key);
      continue;
    }
    if (!res.ok) throw await errorOf(res);
    return raw ? res : res.json();
  }
}

/** Splits a body stream on a separator, yielding each complete record (UTF-8 decoded as a stream). */
async function* records(res, separator) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf(separator)) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + separator.length);
    }
  }
  if (buf.trim()) yield buf;
}

/** The `data:` payloads of a Server-Sent Events response. */
export async function* sseData(res) {
  for await (const block of records(res, "\n\n")) {
    const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(l.startsWith("data: ") ? 6 : 5)).join("\n");
    if (data) yield data;
  }
}

/** The parsed lines of an application/x-ndjson response. */
export async function* ndjson(res) {
  for await (const line of records(res, "\n")) if (line.trim()) yield JSON.parse(line);
}
