// Standard Webhooks signing (src/webhooks/signature.ts) against the reference verifier library.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { eventBody, newWebhookSecret, signatureHeaders, signingKey } from "../../src/webhooks/signature.js";

test("a generated whsec_ secret verifies with new Webhook(secret)", () => {
  const secret = newWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/);
  assert.equal(signingKey(secret).length, 24);
  const body = eventBody("batch.complete", { batch_id: "batch_x" });
  const headers = signatureHeaders(secret, "dlv_1", body);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.equal(headers["webhook-id"], "dlv_1");
});

test("any other secret is its UTF-8 bytes: format raw, or whsec_ + base64 of it", () => {
  const secret = "my-own-secret-0123456789";
  const body = eventBody("model.loaded", { model: "tiny" });
  const headers = signatureHeaders(secret, "dlv_2", body);
  new Webhook(secret, { format: "raw" }).verify(body, headers);
  new Webhook(`whsec_${Buffer.from(secret).toString("base64")}`).verify(body, headers);
});

test("a changed body, id or a stale timestamp is refused", () => {
  const secret = newWebhookSecret();
  const body = eventBody("batch.complete", {});
  const headers = signatureHeaders(secret, "dlv_3", body);
  assert.throws(() => new Webhook(secret).verify(`${body} `, headers));
  assert.throws(() => new Webhook(secret).verify(body, { ...headers, "webhook-id": "dlv_4" }));
  const old = signatureHeaders(secret, "dlv_3", body, Date.now() - 3600_000);
  assert.throws(() => new Webhook(secret).verify(body, old), /timestamp/i);
});
