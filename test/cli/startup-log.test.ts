// What `inferno serve` logs: a start-up banner (console and docs URLs, models dir and count, auth, backend)
// and one info line per request with its route, status, duration, model and tokens; probes at debug.
// Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli, type ServedCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";

type Line = { level: number; msg: string; startup?: Record<string, unknown>; http?: Record<string, unknown> };

const lines = (served: ServedCli): Line[] =>
  served.log().split("\n").flatMap((l) => {
    try {
      return [JSON.parse(l) as Line];
    } catch {
      return [];
    }
  });

async function until<T>(what: string, served: ServedCli, find: (ls: Line[]) => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const found = find(lines(served));
    if (found !== undefined) return found;
    await sleep(50);
  }
  throw new Error(`no ${what} in the log:\n${served.log()}`);
}

test("serve logs a banner, then one info line per request with model and tokens", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const modelsDir = path.join(dir, "models");
  await mkdir(modelsDir);
  await writeTinyLlamaGguf(path.join(modelsDir, "tiny.gguf"));
  const served = await serveCli(["--models-dir", modelsDir, "--data-dir", path.join(dir, "data")]);
  t.after(async () => {
    served.child.kill("SIGTERM");
    await served.exit;
  });

  const banner = await until("banner", served, (ls) => ls.find((l) => l.startup));
  assert.match(banner.msg, /Inferno is ready/);
  assert.equal(banner.startup!.console, `${served.url}/`);
  assert.equal(banner.startup!.docs, `${served.url}/docs`);
  assert.equal(banner.startup!.models, 1);
  assert.equal(banner.startup!.models_dir, modelsDir);
  assert.equal(banner.startup!.auth, false);
  assert.equal(banner.startup!.llama_backend, "cpu");
  assert.match(banner.msg, /Auth\s+off \(listening on this machine only/);

  await (await fetch(`${served.url}/health`)).text();
  const ok = await fetch(`${served.url}/inference`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 5, ignore_eos: true }),
  });
  assert.equal(ok.status, 200);
  await ok.json();
  const missing = await fetch(`${served.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"model":"nope","prompt":"x"}' });
  assert.equal(missing.status, 404);
  await missing.json();

  const generated = await until("inference line", served, (ls) => ls.find((l) => l.http?.route === "/inference" && l.http.status === 200));
  assert.equal(generated.level, 30);
  assert.equal(generated.http!.method, "POST");
  assert.equal(generated.http!.model, "tiny");
  assert.equal(generated.http!.completion_tokens, 5);
  assert.ok(typeof generated.http!.ms === "number");
  assert.match(generated.msg, /^POST \/inference 200 [\d.]+ ms tiny \d+\+5 tokens$/);
  const refused = await until("404 line", served, (ls) => ls.find((l) => l.http?.status === 404));
  assert.equal(refused.http!.code, "MODEL_NOT_FOUND");
  assert.match(refused.msg, /^POST \/inference 404 MODEL_NOT_FOUND /);

  const all = lines(served);
  // One line per request: Fastify's own "incoming request" / "request completed" are off, probes are at debug.
  assert.equal(all.filter((l) => l.http?.route === "/inference").length, 2);
  assert.ok(!all.some((l) => l.msg === "incoming request" || l.msg === "request completed" || l.msg === "request rejected"));
  assert.ok(!all.some((l) => l.http?.route === "/health"), "a health probe is logged at debug, not info");
});
