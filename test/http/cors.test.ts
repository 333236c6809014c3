// Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { postJson, startTestServer } from "../helpers/server.js";

test("CORS: no origin is allowed by default; listed origins are", async (t) => {
  const closed = await startTestServer();
  t.after(() => closed.cleanup());
  const pre = await fetch(`${closed.url}/models`, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST" } });
  assert.equal(pre.headers.get("access-control-allow-origin"), null);
  const get = await fetch(`${closed.url}/health`, { headers: { origin: "https://app.example" } });
  assert.equal(get.headers.get("access-control-allow-origin"), null);

  const open = await startTestServer({ config: { corsOrigins: ["https://app.example"] } });
  t.after(() => open.cleanup());
  const ok = await fetch(`${open.url}/health`, { headers: { origin: "https://app.example" } });
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
  // A page may read the API version, its trace context, request id and rate-limit headers.
  const exposed = (ok.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/\s*,\s*/);
  for (const h of ["api-version", "traceparent", "x-request-id", "retry-after", "x-ratelimit-remaining"]) assert.ok(exposed.includes(h), h);
  const other = await fetch(`${open.url}/health`, { headers: { origin: "https://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const preflight = await fetch(`${open.url}/v1/chat/completions`, {
    method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
});

test("CORS with auth on: a preflight needs no credentials and gets only the CORS answer; a plain OPTIONS is checked as usual", async (t) => {
  const srv = await startTestServer({ config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false, corsOrigins: ["https://app.example"] } });
  t.after(() => srv.cleanup());
  const preflight = (path: string, origin = "https://app.example") =>
    fetch(`${srv.url}${path}`, {
      method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
  for (const path of ["/v1/chat/completions", "/models/x/load", "/health", "/no/such/route"]) {
    const res = await preflight(path);
    assert.equal(res.status, 204, `preflight ${path}`);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(res.headers.get("access-control-allow-headers") ?? "", /authorization/);
    assert.equal(res.headers.get("www-authenticate"), null);
    assert.equal(await res.text(), "", "nothing beyond the CORS headers");
  }
  // Another origin gets the same 204 without an allow-origin header, so its browser refuses the request.
  assert.equal((await preflight("/v1/chat/completions", "https://evil.example")).headers.get("access-control-allow-origin"), null);
  // The request that follows still needs its credential; the 401 carries the CORS header so the page can read it.
  const post = await postJson(`${srv.url}/v1/chat/completions`, { model: "x", messages: [] }, { headers: { origin: "https://app.example", "content-type": "application/json" } });
  assert.equal(post.status, 401);
  assert.equal(post.headers.get("access-control-allow-origin"), "https://app.example");
  // Not preflights: no Origin, or no Access-Control-Request-Method.
  const plain = await fetch(`${srv.url}/models`, { method: "OPTIONS" });
  assert.equal(plain.status, 401);
  assert.equal(((await plain.json()) as any).error.code, "AUTHENTICATION_FAILED");
  assert.equal((await fetch(`${srv.url}/models`, { method: "OPTIONS", headers: { origin: "https://app.example" } })).status, 401);
  const publicOptions = await fetch(`${srv.url}/health`, { method: "OPTIONS" });
  assert.equal(publicOptions.status, 204);
  assert.equal(publicOptions.headers.get("allow"), "GET, HEAD, OPTIONS");
  assert.equal((await fetch(`${srv.url}/health`, { method: "HEAD", headers: { origin: "https://app.example" } })).status, 200);
});
