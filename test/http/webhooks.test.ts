// Webhooks against a local receiver on 127.0.0.1 (so the servers that deliver allow private targets).
// Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import path from "node:path";
import { Webhook } from "standardwebhooks";
import { tempDir } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  answered: number;
}

const HOOK_SECRET = "hook-secret-0123456789";
const BATCH_SECRET = "batch-secret-0123456789";
const received: Received[] = [];
let receiver: http.Server;
let recv: string;
let srv: TestServer;
let dirs: { modelsDir: string; dataDir: string };
let removeDirs: () => Promise<void>;

before(async () => {
  // Answers 500 to the very first delivery (to see it retried) and to everything under /always-500.
  receiver = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (s: string) => (body += s));
    req.on("end", () => {
      const answered = received.length === 0 || req.url === "/always-500" ? 500 : 200;
      received.push({ path: req.url ?? "", headers: req.headers, body, answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  recv = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const tmp = await tempDir();
  removeDirs = tmp.cleanup;
  dirs = { modelsDir: path.join(tmp.dir, "models"), dataDir: path.join(tmp.dir, "data") };
  srv = await startTestServer({ tinyModels: ["tiny"], dirs, config: { webhookAllowPrivate: true } });
  srv.app.webhooks.dispatcher.backoffMs = () => 50;
});
after(async () => {
  await srv.close();
  await removeDirs();
  receiver.close();
});

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as any };
};

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Verifies a delivery as a receiver would, with the Standard Webhooks library on the raw bytes; returns the payload. */
function verify(r: Received, secret: string): any {
  // A secret in the whsec_ form is what the library takes; any other is used as its raw bytes.
  const hook = secret.startsWith("whsec_") ? new Webhook(secret) : new Webhook(secret, { format: "raw" });
  const payload = hook.verify(r.body, r.headers as Record<string, string>) as any;
  // ... which is the same as the whsec_ form of its bytes.
  if (!secret.startsWith("whsec_")) new Webhook(`whsec_${Buffer.from(secret).toString("base64")}`).verify(r.body, r.headers as Record<string, string>);
  assert.match(String(r.headers["webhook-signature"]), /^v1,[A-Za-z0-9+/]+=*$/);
  assert.equal(r.headers["webhook-id"], r.headers["x-inferno-delivery"]);
  assert.ok(Math.abs(Number(r.headers["webhook-timestamp"]) - Date.now() / 1000) < 60, "the timestamp is the attempt's time");
  assert.deepEqual(Object.keys(payload), ["event", "timestamp", "data"]);
  assert.equal(r.headers["x-inferno-event"], payload.event);
  assert.match(payload.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  return payload;
}

test("events reach a registered webhook and a batch's webhook_url, signed, with a retry after a 500", async () => {
  const reg = await postJson(`${srv.url}/webhooks`, {
    webhook_url: `${recv}/hook`, events: ["inference.complete", "batch.complete", "model.loaded"], secret: HOOK_SECRET,
  });
  assert.equal(reg.status, 201);
  assert.match(reg.body.id, /^wh_/);
  const hookId = reg.body.id as string;
  const listed = await getJson(`${srv.url}/webhooks`);
  assert.deepEqual(listed.body.webhooks.map((h: any) => h.id), [hookId]);
  assert.ok(!JSON.stringify(listed.body).includes(HOOK_SECRET), "the secret is never shown");

  const sub = await postJson(`${srv.url}/batch`, {
    model: "tiny", temperature: 0, max_tokens: 8, webhook_url: `${recv}/batch-hook`, webhook_secret: BATCH_SECRET,
    requests: [{ id: "a", prompt: "hello world" }, { id: "b", prompt: "once upon a time" }],
  });
  assert.equal(sub.status, 202);
  assert.equal(sub.body.webhook_secret, undefined, "a secret the client gave is not echoed");
  const batchId = sub.body.batch_id as string;
  const live = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello", max_tokens: 5 }, { headers: { "content-type": "application/json", "x-request-id": "live-req-1" } });
  assert.equal(live.status, 200);

  // model.loaded, inference.complete x3 (2 items, 1 live), batch.complete to the hook, batch.complete to the batch's URL.
  const ok = await waitFor("every event delivered", () => {
    const good = received.filter((r) => r.answered === 200);
    return good.length >= 6 ? good : undefined;
  });
  const byPath = (p: string) => ok.filter((r) => r.path === p);
  const hookEvents = byPath("/hook").map((r) => verify(r, HOOK_SECRET));
  assert.deepEqual(hookEvents.map((e) => e.event).sort(), ["batch.complete", "inference.complete", "inference.complete", "inference.complete", "model.loaded"]);
  const [batchHook] = byPath("/batch-hook").map((r) => verify(r, BATCH_SECRET));
  assert.deepEqual(
    { event: batchHook.event, id: batchHook.data.batch_id, status: batchHook.data.status, completed: batchHook.data.completed, failed: batchHook.data.failed },
    { event: "batch.complete", id: batchId, status: "completed", completed: 2, failed: 0 },
  );
  const liveEvent = hookEvents.find((e) => e.event === "inference.complete" && e.data.request_id === "live-req-1");
  assert.ok(liveEvent, "the live request is reported with its X-Request-Id");
  assert.deepEqual({ model: liveEvent.data.model, tokens: liveEvent.data.tokens_generated }, { model: "tiny", tokens: 5 });
  const itemEvents = hookEvents.filter((e) => e.event === "inference.complete" && e.data.batch_id === batchId);
  assert.deepEqual(itemEvents.map((e) => e.data.item_id).sort(), ["a", "b"]);
  assert.equal(hookEvents.find((e) => e.event === "model.loaded").data.model, "tiny");

  // The first delivery was answered 500 and sent again: same delivery id, same bytes.
  const first = received[0]!;
  assert.equal(first.answered, 500);
  const retry = received.find((r, i) => i > 0 && r.headers["x-inferno-delivery"] === first.headers["x-inferno-delivery"]);
  assert.ok(retry, "the failed delivery was retried");
  assert.equal(retry.body, first.body);
  assert.equal(retry.headers["webhook-id"], first.headers["webhook-id"], "the same message id on every retry");
  // A tampered body or a stale timestamp is refused by the library.
  assert.throws(() => new Webhook(HOOK_SECRET, { format: "raw" }).verify(`${first.body} `, first.headers as Record<string, string>));
  const stale = { ...(first.headers as Record<string, string>), "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600) };
  assert.throws(() => new Webhook(HOOK_SECRET, { format: "raw" }).verify(first.body, stale));
  assert.equal(retry.answered, 200);

  // Delivery status is visible, per webhook and on the batch.
  const deliveries = (await getJson(`${srv.url}/webhooks/${hookId}/deliveries`)).body.deliveries as any[];
  assert.equal(deliveries.length, 5);
  for (const d of deliveries) assert.equal(d.status, "delivered", JSON.stringify(d));
  const retried = deliveries.find((d) => d.id === first.headers["x-inferno-delivery"]) ?? (await getJson(`${srv.url}/batch/${batchId}`)).body.webhook.delivery;
  assert.deepEqual({ attempts: retried.attempts, code: retried.last_status_code, status: retried.status }, { attempts: 2, code: 200, status: "delivered" });
  const status = await getJson(`${srv.url}/batch/${batchId}`);
  assert.equal(status.body.webhook.delivery.status, "delivered");

  assert.equal((await fetch(`${srv.url}/webhooks/${hookId}`, { method: "DELETE" })).status, 200);
  assert.equal((await getJson(`${srv.url}/webhooks/${hookId}/deliveries`)).status, 404);
});

test("a delivery that keeps failing stops after the maximum attempts, marked failed", async () => {
  const sub = await postJson(`${srv.url}/batch`, {
    model: "tiny", max_tokens: 2, webhook_url: `${recv}/always-500`, requests: [{ id: "x", prompt: "hi" }],
  });
  assert.match(sub.body.webhook_secret, /^whsec_[A-Za-z0-9+/]{32}$/, "a generated secret is returned once, in the whsec_ form");
  const delivery = await waitFor("the delivery to fail for good", async () => {
    const d = (await getJson(`${srv.url}/batch/${sub.body.batch_id}`)).body.webhook.delivery;
    return d?.status === "failed" ? d : undefined;
  });
  assert.deepEqual({ attempts: delivery.attempts, max: delivery.max_attempts, code: delivery.last_status_code }, { attempts: 6, max: 6, code: 500 });
  assert.equal(received.filter((r) => r.path === "/always-500").length, 6);
  verify(received.find((r) => r.path === "/always-500")!, sub.body.webhook_secret);
});

test("private, loopback and credentialed targets are refused unless the operator allows private ones", async () => {
  const strict = await startTestServer({ tinyModels: ["tiny"] });
  try {
    const bad: Array<[string, RegExp]> = [
      [`${recv}/hook`, /private or loopback/],
      ["http://localhost:9/", /private or loopback/],
      ["http://[::1]:9/", /private or loopback/],
      ["http://[::ffff:127.0.0.1]/", /private or loopback/],
      ["http://169.254.169.254/latest/meta-data", /private or loopback/],
      ["http://10.1.2.3/", /private or loopback/],
      ["http://user:pw@example.com/", /credentials/],
      ["ftp://example.com/", /http or https/],
      ["not a url", /not a valid URL/],
    ];
    for (const [url, why] of bad) {
      const r = await postJson(`${strict.url}/webhooks`, { webhook_url: url, events: ["model.loaded"], secret: HOOK_SECRET });
      assert.equal(r.status, 400, url);
      assert.match(r.body.error.message, why, url);
    }
    const batch = await postJson(`${strict.url}/batch`, { model: "tiny", webhook_url: `${recv}/b`, requests: [{ id: "a", prompt: "hi" }] });
    assert.equal(batch.status, 400);
    assert.match(batch.body.error.message, /private or loopback/);
  } finally {
    await strict.cleanup();
  }
});

test("the target is checked again when delivering: a webhook registered while allowed is not sent to a private address later", async () => {
  const reg = await postJson(`${srv.url}/webhooks`, { webhook_url: `http://localhost:${new URL(recv).port}/later`, events: ["model.loaded"], secret: HOOK_SECRET });
  assert.equal(reg.status, 201);
  await srv.close();
  // The same data dir (registrations and queue survive), now with private targets refused.
  srv = await startTestServer({ tinyModels: ["tiny"], dirs });
  assert.equal((await postJson(`${srv.url}/models/tiny/load`, {})).status, 200);
  const d = await waitFor("a first attempt", async () => {
    const list = (await getJson(`${srv.url}/webhooks/${reg.body.id}/deliveries`)).body.deliveries as any[];
    return list[0]?.attempts >= 1 ? list[0] : undefined;
  });
  assert.match(d.last_error, /private or loopback/);
  assert.equal(d.status, "pending", "it is retried later (until the attempts run out)");
  assert.equal(received.filter((r) => r.path === "/later").length, 0);
});
