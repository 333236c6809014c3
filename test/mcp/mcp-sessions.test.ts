// Needs no model. MCP sessions on /mcp do not leak: an idle one expires and is forgotten, DELETE ends one,
// the cap refuses one more, and the drain closes them; the gauge inferno_mcp_sessions follows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { mcpHttpClient } from "../helpers/mcp-client.js";
import { startTestServer } from "../helpers/server.js";

async function gauge(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^inferno_mcp_sessions (\d+)$/m.exec(text);
  assert.ok(m, "the gauge is exported");
  return Number(m[1]);
}

test("an idle session expires, is cleaned up, and its id is then refused", async (t) => {
  const srv = await startTestServer({ config: { mcpSessionIdleMs: 1000 } });
  t.after(() => srv.cleanup());
  const { client, transport } = await mcpHttpClient(srv.url);
  t.after(() => client.close());
  await client.listTools();
  assert.equal(srv.app.mcp.sessions(), 1);
  assert.equal(await gauge(srv.url), 1);
  // Requests keep it alive past the idle time.
  for (let i = 0; i < 3; i++) {
    await sleep(500);
    await client.ping();
  }
  assert.equal(srv.app.mcp.sessions(), 1);
  await sleep(1400);
  assert.equal(srv.app.mcp.sessions(), 0, "expired and forgotten");
  assert.equal(await gauge(srv.url), 0);
  const err = await client.listTools().catch((e: unknown) => e as { code?: number; message: string });
  assert.equal((err as { code?: number }).code, 404);
  assert.match((err as Error).message, /expired or was closed/);
  // A new session starts cleanly.
  const again = await mcpHttpClient(srv.url);
  await again.client.listTools();
  assert.equal(srv.app.mcp.sessions(), 1);
  await again.transport.terminateSession();
  assert.equal(srv.app.mcp.sessions(), 0, "DELETE ends it at once");
  void transport;
});

test("the cap refuses one session more with 503; closing one makes room", async (t) => {
  const srv = await startTestServer({ config: { mcpMaxSessions: 2 } });
  t.after(() => srv.cleanup());
  const a = await mcpHttpClient(srv.url);
  const b = await mcpHttpClient(srv.url);
  await assert.rejects(mcpHttpClient(srv.url), (e: any) => e.code === 503 && /maximum of 2 MCP sessions/.test(e.message));
  await a.transport.terminateSession();
  const c = await mcpHttpClient(srv.url);
  assert.equal(srv.app.mcp.sessions(), 2);
  await Promise.all([a.client.close(), b.client.close(), c.client.close()]);
});

test("the drain closes idle sessions and refuses new ones", async (t) => {
  const srv = await startTestServer();
  t.after(() => srv.cleanup());
  const a = await mcpHttpClient(srv.url);
  await a.client.listTools();
  assert.equal(srv.app.mcp.sessions(), 1);
  const report = await srv.app.drain(2000);
  assert.equal(srv.app.mcp.sessions(), 0);
  assert.ok(report.endedByGrace === 0, "the session's GET stream did not hold the drain to its grace");
  await a.client.close();
});
