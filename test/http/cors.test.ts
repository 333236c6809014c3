// Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestServer } from "../helpers/server.js";

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
  const other = await fetch(`${open.url}/health`, { headers: { origin: "https://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const preflight = await fetch(`${open.url}/v1/chat/completions`, {
    method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
});
