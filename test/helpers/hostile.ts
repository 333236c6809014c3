// The hostile-input suite's catalogue and checks (issue #12): bodies, query strings and paths an attacker
// sends, a raw HTTP client that sends them byte for byte (fetch would normalise `%2e%2e` and `//`), and
// what every answer must satisfy.
import http from "node:http";

/** Status codes a hostile request may get besides 4xx: load shedding, which is the server working as designed. */
export const SHEDDING = new Set([503, 504, 507]);

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

export interface Hostile {
  name: string;
  body: string | Buffer;
  contentType?: string;
}

/** Sends exactly `path` and `body` (no URL normalisation); rejects after `timeoutMs`, which is a hang. */
export function rawRequest(
  agent: http.Agent, base: URL, method: string, path: string, payload?: Hostile, timeoutMs = 15_000, extraHeaders: Record<string, string> = {},
): Promise<Answer> {
  const started = performance.now();
  const body = payload?.body;
  const headers: Record<string, string | number> = { ...extraHeaders };
  if (body !== undefined) {
    headers["content-type"] = payload?.contentType ?? "application/json";
    headers["content-length"] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path, headers, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - started }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // A server that refuses an oversized body may answer and close before the body is written.
    req.on("error", (err) => ((err as NodeJS.ErrnoException).code === "EPIPE" ? undefined : reject(err)));
    req.end(body);
  });
}

/** A V8 stack frame: `at fn (/abs/file.js:1:2)`, `at file:///x.js:1:2`, `at node:internal/x:1:2`. */
export const STACK = /\bat (?:[^\s()]+ \()?(?:file:\/\/|node:|\/)[^\s()]*:\d+:\d+/;

/** The error envelope a path's answers use, as src/errors/error-handler.ts's dialectOf picks it from the raw URL. */
function dialectOfPath(path: string): "native" | "openai" | "ollama" | "kserve" {
  return path.startsWith("/v1/") ? "openai" : path.startsWith("/api/") ? "ollama" : path.startsWith("/v2/") || path === "/v2" ? "kserve" : "native";
}

/** Whether `body` is the error envelope of `dialect`: a code (native, OpenAI) or the message alone (Ollama, KServe). */
function isEnvelope(body: unknown, dialect: ReturnType<typeof dialectOfPath>): boolean {
  const error = (body as { error?: unknown } | null)?.error;
  if (dialect === "ollama" || dialect === "kserve") return typeof error === "string" && error.length > 0;
  const e = error as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code !== "string" || typeof e.message !== "string") return false;
  return dialect === "openai" || typeof (body as { request_id?: unknown }).request_id === "string";
}

/** Why an answer is not acceptable (empty when it is): a 5xx that is not load shedding, a bad envelope, a leak. */
export function problemsOf(answer: Answer, secrets: readonly string[], method: string, path: string): string[] {
  const problems: string[] = [];
  if (answer.status >= 500 && !SHEDDING.has(answer.status)) problems.push(`status ${answer.status}`);
  if (method === "HEAD") return problems; // no body to look at
  if (STACK.test(answer.body)) problems.push("a stack frame in the body");
  if (/node_modules/.test(answer.body)) problems.push("'node_modules' in the body");
  if (answer.status >= 400) {
    for (const s of secrets) if (answer.body.includes(s)) problems.push(`the path ${s} in the body`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      problems.push("an error body that is not JSON");
    }
    if (parsed !== undefined && !isEnvelope(parsed, dialectOfPath(path))) problems.push(`not the ${dialectOfPath(path)} error envelope`);
  }
  return problems;
}

const deepArray = (n: number) => "[".repeat(n) + "]".repeat(n);
const deepObject = (n: number, leaf = "1") => '{"a":'.repeat(n) + leaf + "}".repeat(n);
const json = (v: unknown) => JSON.stringify(v);

/** A request that most routes would accept, so each mutation reaches past the schema where it can. */
const base = {
  model: "stories",
  prompt: "Once upon a time",
  messages: [{ role: "user", content: "Once upon a time" }],
  input: "Once",
  max_tokens: 4,
  options: { num_predict: 4 },
  stream: false,
};

/** Every numeric field the routes know, at once. `INF` is replaced by a literal JSON cannot otherwise spell. */
const numericFields = [
  "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "n", "best_of", "top_logprobs",
  "logprobs", "presence_penalty", "frequency_penalty", "repeat_penalty", "context_size", "batch_size", "parallel", "gpu_layers",
  "max_batch_size", "max_queue_delay_us", "limit", "value", "dimensions",
];
const withNumbers = (literal: string) =>
  json({ ...base, options: { num_predict: "INF", num_ctx: "INF", temperature: "INF", seed: "INF" }, ...Object.fromEntries(numericFields.map((f) => [f, "INF"])) })
    .replaceAll('"INF"', literal);

const recursiveRef = { $ref: "#/$defs/a", $defs: { a: { type: "object", properties: { a: { $ref: "#/$defs/a" } }, required: ["a"] } } };
const selfRef = { $ref: "#" };
const evilPattern = { type: "object", properties: { s: { type: "string", pattern: "^(a+)+$" } }, required: ["s"] };
const deepSchema = JSON.parse('{"type":"object","properties":{"a":'.repeat(2000) + '{"type":"string"}' + "}}".repeat(2000));
const schemaCarriers = (schema: unknown) => ({
  ...base,
  format: schema,
  response_format: { type: "json_schema", json_schema: { name: "x", schema } },
  tools: [{ type: "function", function: { name: "f", parameters: schema } }],
});

/**
 * Tensors claiming 10^24 elements, in each form the tensor routes read: for mnist-8 (input Input3, float32
 * [1,1,28,28], fixed) and for the PaddleOCR classifier (input x, float32 [N,3,H,W], all but 3 dynamic).
 */
const hugeBinary = {
  inputs: { Input3: { data_b64: "AAAAAA==", shape: [1, 1, 1e12, 1e12], dtype: "float32" }, x: { data_b64: "AAAAAA==", shape: [1e6, 3, 1e9, 1e9], dtype: "float32" } },
};
const hugeKserve = {
  inputs: [{ name: "Input3", shape: [1, 1, 1e12, 1e12], datatype: "FP32", data: [1] }, { name: "x", shape: [1e6, 3, 1e9, 1e9], datatype: "FP32", data: [1] }],
};
const hugeOcr = { inputs: { x: { data_b64: "AAAAAA==", shape: [1e6, 3, 1e9, 1e9], dtype: "float32" } } };
const hugeOcrKserve = { inputs: [{ name: "x", shape: [1e6, 3, 1e9, 1e9], datatype: "FP32", data: [1] }] };
const deepTensor = `{"inputs":{"Input3":${"[".repeat(5000)}1${"]".repeat(5000)}}}`;
const deepKserve = `{"inputs":[{"name":"Input3","shape":[1,1,28,28],"datatype":"FP32","data":${"[".repeat(5000)}1${"]".repeat(5000)}}]}`;

/** The bodies every route with a body gets. */
export function hostileBodies(): Hostile[] {
  const megabyte = "Once upon a time ".repeat(61_700).slice(0, 1_000_000);
  return [
    { name: "empty body", body: "" },
    { name: "truncated JSON", body: '{"model": "stories", "prompt": ' },
    { name: "null", body: "null" },
    { name: "array", body: "[]" },
    { name: "bare string", body: '"x"' },
    { name: "NaN literal", body: '{"model": "stories", "prompt": "x", "max_tokens": NaN}' },
    { name: "1e309 everywhere", body: withNumbers("1e309") },
    { name: "-1e309 everywhere", body: withNumbers("-1e309") },
    { name: "1e-400 and -0", body: withNumbers("1e-400").replace('"max_tokens":1e-400', '"max_tokens":-0') },
    { name: "2^64 everywhere", body: withNumbers("18446744073709551616") },
    { name: "strings where numbers go", body: withNumbers('"1e309"') },
    { name: "10,000 stop strings", body: json({ ...base, stop: Array.from({ length: 10_000 }, (_, i) => `s${i}`), options: { ...base.options, stop: Array.from({ length: 10_000 }, (_, i) => `s${i}`) } }) },
    { name: "1 MB prompt", body: json({ ...base, prompt: megabyte, input: megabyte, messages: [{ role: "user", content: megabyte }] }) },
    { name: "lone surrogates", body: '{"model":"stories\\ud800","prompt":"\\udc00x\\ud800","input":"\\ud83d","messages":[{"role":"user","content":"\\udfff"}],"stop":["\\ud800"],"name":"\\ud800","path":"\\ud800","max_tokens":4,"stream":false}' },
    { name: "lone surrogate in a valid model's prompt", body: '{"model":"stories","prompt":"\\ud800\\udc00\\ud800","messages":[{"role":"user","content":"\\ud800"}],"input":"\\udfff","max_tokens":4,"options":{"num_predict":4},"stream":false}' },
    { name: "recursive $ref schema", body: json(schemaCarriers(recursiveRef)) },
    { name: "self $ref schema", body: json(schemaCarriers(selfRef)) },
    { name: "catastrophic regex pattern", body: json(schemaCarriers(evilPattern)) },
    { name: "2,000-deep schema", body: json(schemaCarriers(deepSchema)) },
    { name: "__proto__ pollution", body: '{"__proto__": {"polluted": true}, "model": "stories", "prompt": "x", "max_tokens": 4}' },
    { name: "constructor.prototype pollution", body: '{"constructor": {"prototype": {"polluted": true}}, "model": "stories", "prompt": "x", "max_tokens": 4}' },
    { name: "nested __proto__ pollution", body: json({ ...base, options: JSON.parse('{"__proto__": {"polluted": true}}'), format: JSON.parse('{"__proto__": {"polluted": true}, "type": "object"}') }) },
    { name: "5,000-deep array", body: deepArray(5000) },
    { name: "5,000-deep object", body: deepObject(5000) },
    { name: "5,000-deep values in fields", body: json(base).replace('"input":"Once"', `"input":${deepArray(5000)},"format":${deepObject(5000)},"inputs":${deepObject(5000)},"options":${deepObject(5000)}`) },
    { name: "tensor claiming 10^24 elements", body: json(hugeBinary) },
    { name: "KServe tensor claiming 10^24 elements", body: json(hugeKserve) },
    { name: "dynamic-shape tensor claiming 10^24 elements", body: json(hugeOcr) },
    { name: "dynamic-shape KServe tensor claiming 10^24 elements", body: json(hugeOcrKserve) },
    { name: "5,000-deep tensor", body: deepTensor },
    { name: "5,000-deep KServe data", body: deepKserve },
    { name: "tensor data of the wrong length and type", body: json({ inputs: { Input3: { data_b64: "////", shape: [1, 1, 28, 28], dtype: "float32" } } }) },
    { name: "KServe data of the wrong type", body: json({ inputs: [{ name: "Input3", shape: [1, 1, 28, 28], datatype: "FP32", data: ["1e309", null, {}, [], true] }] }) },
    { name: "tensor with negative, fractional and 100 dims", body: json({ inputs: { Input3: { data_b64: "AAAA", shape: [-1, 1.5, ...Array(98).fill(1)], dtype: "float32" } } }) },
    { name: "paths and URLs where names go", body: json({ ...base, model: "../../../../etc/passwd", name: "../x", path: "/etc/passwd", webhook_url: "file:///etc/passwd", input_file_id: "../../etc/passwd" }) },
    { name: "form-encoded", body: "model=stories&prompt=x", contentType: "application/x-www-form-urlencoded" },
    { name: "multipart without a boundary", body: "--x\r\n\r\n", contentType: "multipart/form-data" },
    { name: "multipart with traversal filename", body: '--b\r\nContent-Disposition: form-data; name="file"; filename="../../../etc/passwd"\r\n\r\n{}\r\n--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--b--\r\n', contentType: "multipart/form-data; boundary=b" },
    { name: "5 MB body (over bodyLimit)", body: json({ ...base, prompt: "x".repeat(5_000_000) }) },
    { name: "binary garbage", body: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)), contentType: "application/octet-stream" },
  ];
}

/** Query strings for every GET route. */
export const HOSTILE_QUERIES = [
  "?limit=1e309", "?limit=NaN", "?limit=-1", "?limit=1&limit=2", "?after=%00", "?purpose=%ED%A0%80", "?__proto__[polluted]=1",
  "?constructor[prototype][polluted]=1", "?" + "a=1&".repeat(2000), "?order=%27%3B--",
];

/** Values put where a route has a parameter (`:id`, `:name`, `:version`). */
export const HOSTILE_PARAMS = ["%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%00", "x%00y", "a".repeat(300), "%ED%A0%80", "%", "%zz", "%F0%9F%98%80", "STORIES"];

/** Paths whatever the routes are: normalisation tricks, case, encodings. */
export const HOSTILE_PATHS = [
  "//v1/models", "/v1//models", "//health", "/%2e%2e/health", "/health/..", "/./health", "/%2e/health", "/v1/%2e%2e/v1/models",
  "/health;", "/health;x=1", "/v1/models;/x", "/health%00", "/health%00.json", "/HEALTH", "/V1/MODELS", "/Api/Tags", "/health?%00=%00",
  "/%", "/%zz", "/health%2F", "/models/..%2F..%2F..%2Fetc%2Fpasswd", "/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/load",
  "/" + "a".repeat(8000), "/v2/models/%00/infer", "/files/../../etc/passwd",
];

const b64url = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** Authorization headers that are not credentials (Node's client refuses CR, LF and NUL, so those stay out). */
export const HOSTILE_CREDENTIALS = [
  "Bearer " + "x".repeat(12_000),
  "Bearer inf_",
  "Bearer inf_../../etc/passwd_x",
  "Bearer inf_" + "a".repeat(5000) + "_" + "b".repeat(5000),
  "Bearer a.b.c",
  `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "root", role: "admin" })}.`,
  `Bearer ${b64url({ alg: "HS256", kid: "../../../etc/passwd" })}.${b64url({ sub: "root", role: "admin" })}.${b64url("sig")}`,
  `Bearer ${b64url({ alg: "RS256" })}.${b64url('{"a":'.repeat(1500) + "1" + "}".repeat(1500))}.x`,
  `Bearer ${b64url("{")}.${b64url("[")}.${b64url("")}`,
  "Bearer",
  "Basic YWRtaW46YWRtaW4=",
  "bearer x y z",
];

/** Requests Node's HTTP parser must refuse, sent on a raw socket. */
export const MALFORMED_HTTP = [
  "get /health HTTP/1.1\r\nHost: x\r\n\r\n",
  "POST /inference HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
  "POST /inference HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
  "POST /inference HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "POST /inference HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
  "GET /hea\0lth HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /h\u00e9alth HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /health HTTP/1.1\r\nHost: x\r\nX-Bad\u0001: y\r\n\r\n",
  "BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
];
