// Webhooks registered with POST /webhooks across replicas (redisUrl): a real redis-server and two real
// `inferno serve` processes. A webhook registered on one replica is listed by the other and hears its
// events (inference.complete from a request served there, model.loaded when it loads), each delivered
// once, signed the Standard Webhooks way; its deliveries show on either replica; removed on one, the
// other stops sending within a second. Needs no external model: a tiny llama GGUF is generated.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Webhook } from "standardwebhooks";
import type { ServedCli } from "../helpers/cli.js";
import { startFleet } from "../helpers/fleet.js";
import { redisAvailable } from "../helpers/redis.js";
import { waitFor } from "../helpers/webhook-receiver.js";

const SECRET = `whsec_${Buffer.from("a fleet webhook secret, 32 bytes").toString("base64")}`;

const call = async (url: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> => {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    ...(init.body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(init.body) }),
  });
  return { status: res.status, body: await res.json() };
};

test("a webhook registered on one replica hears the others' events once; removed on one, gone on all", { ...redisAvailable(), timeout: 90_000 }, async (t) => {
  const { recv, serve } = await startFleet(t, "inferno-scale-webhooks-");
  const flags = ["--threads", "1", "--context-size", "256"];
  const replicas = await Promise.all([1, 2].map((i) => serve(i, flags)));
  const [r1, r2] = replicas as [ServedCli, ServedCli];

  const reg = await call(`${r1.url}/webhooks`, { body: { webhook_url: `${recv.url}/hook`, events: ["inference.complete", "model.loaded"], secret: SECRET } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const id = reg.body.id as string;
  const listed = await waitFor("the registration on replica 2", 1_000, async () => {
    const hooks = (await call(`${r2.url}/webhooks`)).body.webhooks as Array<{ id: string; events: string[] }>;
    return hooks.find((h) => h.id === id);
  });
  assert.deepEqual(listed.events, ["inference.complete", "model.loaded"]);
  assert.equal(JSON.stringify(listed).includes(SECRET), false, "the secret is never shown");

  // Served by replica 2: it loads the model (model.loaded) and answers (inference.complete).
  const gen = await fetch(`${r2.url}/inference`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "hello", max_tokens: 5, temperature: 0 }),
  });
  assert.equal(gen.status, 200);
  const requestId = gen.headers.get("x-request-id");
  await waitFor("two deliveries", 10_000, async () => (recv.received.length >= 2 ? true : undefined));
  await sleep(300); // nothing more comes: each event once
  assert.equal(recv.received.length, 2);
  const verifier = new Webhook(SECRET);
  const events = recv.received.map((r) => verifier.verify(r.body, r.headers) as { event: string; data: Record<string, unknown> });
  const complete = events.find((e) => e.event === "inference.complete");
  assert.equal(complete?.data.request_id, requestId);
  assert.equal(complete?.data.tokens_generated, 5);
  assert.equal(events.find((e) => e.event === "model.loaded")?.data.model, "tiny");

  // Its delivery history, from either replica, newest first.
  for (const r of [r1, r2]) {
    const deliveries = await waitFor("delivered statuses", 5_000, async () => {
      const list = (await call(`${r.url}/webhooks/${id}/deliveries`)).body.deliveries as Array<{ id: string; event: string; status: string; last_status_code: number }>;
      return list.length === 2 && list.every((d) => d.status === "delivered") ? list : undefined;
    });
    assert.deepEqual(new Set(deliveries.map((d) => d.event)), new Set(["inference.complete", "model.loaded"]));
    assert.deepEqual(new Set(deliveries.map((d) => d.id)), new Set(recv.received.map((x) => x.headers["webhook-id"])));
    assert.ok(deliveries.every((d) => d.last_status_code === 200));
  }

  // Removed on replica 1: replica 2 forgets it within a second and sends nothing more.
  const removed = await call(`${r1.url}/webhooks/${id}`, { method: "DELETE" });
  assert.deepEqual(removed.body, { id, deleted: true });
  await waitFor("the removal on replica 2", 1_000, async () => ((await call(`${r2.url}/webhooks`)).body.webhooks.length === 0 ? true : undefined));
  assert.equal((await call(`${r2.url}/webhooks/${id}/deliveries`)).status, 404);
  const again = await call(`${r2.url}/inference`, { body: { model: "tiny", prompt: "hello", max_tokens: 3, temperature: 0 } });
  assert.equal(again.status, 200);
  await sleep(500);
  assert.equal(recv.received.length, 2);
  assert.equal((await call(`${r2.url}/webhooks/${id}`, { method: "DELETE" })).status, 404);
});
