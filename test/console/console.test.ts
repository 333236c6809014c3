// The web console in a real browser against a real server. Needs ../shared/models (stories260K.gguf,
// mnist-8.onnx) and Chromium at /usr/bin/chromium; skipped without them (INFERNO_REQUIRE_REAL_MODELS=1 or
// INFERNO_REQUIRE_BROWSER=1 make them required). INFERNO_SCREENSHOTS=1 also writes docs/console-*.png.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { realModel, repoRoot } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

// Page functions run in the browser; this file compiles without the DOM lib, so its globals are declared loosely.
declare const document: any, window: any, sessionStorage: any, localStorage: any, MutationObserver: any;

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const SCREENSHOTS = process.env.INFERNO_SCREENSHOTS === "1";

function browserSkip(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.INFERNO_REQUIRE_BROWSER === "1") throw new Error(`console tests are required but ${CHROMIUM} is missing`);
  return `Chromium not found at ${CHROMIUM} (INFERNO_REQUIRE_BROWSER=1 makes this a failure)`;
}

const stories = realModel("stories260K.gguf");
const mnist = realModel("mnist-8.onnx");
const skip = stories.skip || mnist.skip || browserSkip();

let srv: TestServer;
let browser: Browser;

before(async () => {
  if (skip) return;
  // pullAllowPrivate: the pull test downloads from a server on loopback.
  srv = await startTestServer({ models: { stories260K: stories.path, mnist: mnist.path }, config: { contextSize: 2048, parallel: 2, pullAllowPrivate: true } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
after(async () => {
  await browser?.close();
  await srv?.cleanup();
});

const pageErrors = new WeakMap<Page, string[]>();

/** The console in a fresh browser context (empty storage). */
async function open(url: string, hash = ""): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/${hash}`);
  return page;
}

/** Closes the page's context, after checking that nothing in the page threw. */
async function close(page: Page): Promise<void> {
  assert.deepEqual(pageErrors.get(page), [], "no uncaught errors in the page");
  await page.context().close();
}

async function ready(page: Page): Promise<void> {
  await page.waitForSelector("body[data-ready=true]", { timeout: 10_000 });
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS) await page.screenshot({ path: path.join(repoRoot, "docs", `console-${name}.png`) });
}

test("the page loads, lists both models and loads one with its button", { skip }, async () => {
  const page = await open(srv.url);
  await ready(page);
  const rows = page.locator("#models-table tbody tr");
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr: any) => tr.dataset.model).sort()), ["mnist", "stories260K"]);
  const mnistRow = page.locator('tr[data-model="mnist"]');
  assert.match(await mnistRow.innerText(), /ONNX\s+25\.8 KB\s+tensor-inference\s+not loaded/);
  assert.match(await page.locator('tr[data-model="stories260K"]').innerText(), /GGUF\s+1\.1 MB\s+text-generation/);

  await page.click('button[aria-label="Load mnist"]');
  await page.waitForSelector('tr[data-model="mnist"] .badge.on');
  assert.ok(srv.app.registry.getLoaded("mnist"), "the server loaded it");
  assert.match(await mnistRow.locator('[data-field="memory"]').innerText(), /\d+(\.\d)? (KB|MB)/);
  await page.click('button[aria-label="Load stories260K"]');
  await page.waitForSelector('tr[data-model="stories260K"] .badge.on');
  await screenshot(page, "models");
  await close(page);
});

test("a completion streams into the page with TTFT and tok/s", { skip }, async () => {
  const page = await open(srv.url, "#chat");
  await ready(page);
  assert.equal(await page.inputValue("#chat-mode"), "completion", "stories260K has no chat template");
  await page.fill("#chat-temperature", "0");
  await page.fill("#chat-max-tokens", "400");
  // Record every length the reply's text takes while it streams.
  await page.evaluate(() => {
    const lengths: number[] = [];
    (window as any).lengths = lengths;
    new MutationObserver(() => {
      const text = document.querySelector("#chat-log .msg.assistant .text");
      if (text && lengths.at(-1) !== text.textContent!.length) lengths.push(text.textContent!.length);
    }).observe(document.querySelector("#chat-log")!, { subtree: true, childList: true, characterData: true });
  });
  await page.click("#chat-send");
  const reply = page.locator("#chat-log .msg.assistant").last();
  await page.waitForSelector('#chat-log .msg.assistant[data-state="done"]');
  const lengths: number[] = await page.evaluate(() => (window as any).lengths);
  assert.ok(lengths.length >= 3, `the text grew in steps (${lengths.join(", ")})`);
  // Greedy: the golden continuation of stories-http.test.ts.
  assert.match(await reply.locator(".text").innerText(), /^, there was a little girl named Lily\. She loved to play outside in the park\./);
  assert.match(await reply.locator('[data-stat="ttft"]').innerText(), /^TTFT \d+ ms$/);
  assert.match(await reply.locator('[data-stat="tps"]').innerText(), /^\d+(\.\d)? tok\/s$/);
  assert.equal(await reply.locator('[data-stat="tokens"]').innerText(), "400 tokens");
  assert.equal(await reply.locator('[data-stat="finish"]').innerText(), "length");

  await page.click("#chat-code summary");
  const curl = await page.locator("#chat-snippet-curl").innerText();
  assert.match(curl, new RegExp(`^curl -N ${srv.url}/v1/completions`));
  const body = JSON.parse(/-d '(.*)'$/s.exec(curl)![1]!);
  assert.deepEqual(body, { model: "stories260K", prompt: "Once upon a time", temperature: 0, top_p: 0.95, max_tokens: 400, stream: true });
  assert.match(await page.locator("#chat-snippet-python").innerText(), /client\.completions\.create\(\n {4}model="stories260K",\n {4}prompt="Once upon a time",/);
  await screenshot(page, "chat");
  await close(page);
});

test("Stop aborts a long reply and the server stops generating", { skip }, async () => {
  const page = await open(srv.url, "#chat");
  await ready(page);
  const MAX = 2000;
  await page.fill("#chat-temperature", "0");
  await page.fill("#chat-max-tokens", String(MAX));
  const model = srv.app.registry.getLoaded("stories260K") as LlamaTextModel | undefined;
  const before = model?.generatedTokens ?? 0;
  await page.click("#chat-send");
  await page.waitForFunction(() => (document.querySelector("#chat-log .msg.assistant .text")?.textContent?.length ?? 0) > 40);
  await page.click("#chat-stop");
  const reply = page.locator('#chat-log .msg.assistant[data-state="stopped"]');
  await reply.waitFor();
  assert.equal(await reply.locator('[data-stat="finish"]').innerText(), "stopped");
  const shown = Number(/^(\d+) tokens$/.exec(await reply.locator('[data-stat="tokens"]').innerText())![1]);

  const loaded = srv.app.registry.getLoaded("stories260K") as LlamaTextModel;
  for (let i = 0; i < 200 && loaded.inFlight > 0; i++) await sleep(10);
  assert.equal(loaded.inFlight, 0, "the generation left its sequence");
  const generated = loaded.generatedTokens - before;
  assert.ok(generated < MAX, `the server stopped early: ${generated} of ${MAX} tokens`);
  assert.ok(generated >= shown, `the page showed ${shown} of the ${generated} generated`);
  // The request ended before its response did: counted as 499, as a client that left.
  const cancelled = /inferno_inference_requests_total\{model="stories260K",route="\/v1\/completions",status="499",transport="http"\} 1/;
  let metrics = "";
  for (let i = 0; i < 50 && !cancelled.test(metrics); i++) metrics = await (await fetch(`${srv.url}/metrics`)).text().finally(() => sleep(20));
  assert.match(metrics, cancelled);
  await close(page);
});

/** Draws strokes given in 28×28 grid units on the digit canvas with the mouse. */
async function draw(page: Page, strokes: Array<Array<[number, number]>>): Promise<string> {
  await page.click("#digit-clear");
  const box = (await page.locator("#digit-canvas").boundingBox())!;
  const at = ([x, y]: [number, number]) => [box.x + (x / 28) * box.width, box.y + (y / 28) * box.height] as const;
  for (const stroke of strokes) {
    await page.mouse.move(...at(stroke[0]!));
    await page.mouse.down();
    for (const p of stroke.slice(1)) await page.mouse.move(...at(p), { steps: 6 });
    await page.mouse.up();
  }
  await page.waitForFunction(() => document.querySelector("#digit-prediction")!.textContent !== "–");
  await page.waitForFunction(() => document.querySelectorAll("#digit-probs li").length === 10);
  return page.locator("#digit-prediction").innerText();
}

test("a digit drawn with the mouse is classified by mnist-8", { skip }, async () => {
  const page = await open(srv.url, "#tensor");
  await ready(page);
  await page.selectOption("#tensor-model", "mnist");
  await page.waitForSelector("#digit-pad:not([hidden])");
  assert.match(await page.locator("#tensor-signature").innerText(), /Input3 float32 \[1, 1, 28, 28\][\s\S]*Plus214_Output_0 float32 \[1, 10\]/);
  // Drawn small and off-centre on purpose: the page centres the ink as MNIST did.
  assert.equal(await draw(page, [[[20, 3], [19, 14]]]), "1");
  const ring = Array.from({ length: 25 }, (_, i) => [14 + 6 * Math.sin((i / 24) * 2 * Math.PI), 14 - 8 * Math.cos((i / 24) * 2 * Math.PI)] as [number, number]);
  assert.equal(await draw(page, [ring]), "0");
  assert.equal(await draw(page, [[[7, 6], [21, 6], [13, 24]]]), "7");
  const best = await page.locator("#digit-probs li.best .pct").innerText();
  assert.ok(parseFloat(best) > 50, `7 is the clear winner (${best})`);

  // The generic JSON path: a zero image is accepted and answered with the output tensor.
  await page.click("#tensor-run");
  await page.waitForFunction(() => document.querySelector("#tensor-output")!.textContent!.includes("Plus214_Output_0"));
  await screenshot(page, "tensor");
  await close(page);
});

test("a coded API error is shown with its code and message", { skip }, async () => {
  const page = await open(srv.url);
  await ready(page);
  await page.fill("#register-name", "passwd");
  await page.fill("#register-path", "/etc/passwd");
  await page.click("#register-submit");
  const toast = page.locator("#toasts .toast.error");
  await toast.waitFor();
  assert.equal(await toast.locator(".code").innerText(), "PATH_NOT_ALLOWED");
  assert.match(await toast.locator(".message").innerText(), /outside the models dir/);
  // Errors stay until dismissed.
  await sleep(300);
  assert.equal(await toast.count(), 1);
  await toast.locator(".dismiss").click();
  assert.equal(await toast.count(), 0);
  await close(page);
});

test("the Status view shows load, token throughput and batch progress", { skip }, async () => {
  const submitted = await postJson(`${srv.url}/batch`, { model: "stories260K", requests: [{ id: "a", prompt: "Once" }, { id: "b", prompt: "Tom" }], max_tokens: 8 });
  assert.equal(submitted.status, 202);
  const page = await open(srv.url, "#status");
  await ready(page);
  await page.waitForSelector(`tr[data-batch="${submitted.body.batch_id}"]`);
  await page.waitForFunction((id) => document.querySelector(`tr[data-batch="${id}"]`)!.textContent!.includes("2/2"), submitted.body.batch_id);
  // Earlier tests generated hundreds of tokens within the minute.
  assert.ok(Number(await page.locator("#stat-tps").innerText()) > 0);
  assert.match(await page.locator("#stat-in-flight").innerText(), /^\d+$/);
  assert.match(await page.locator("#stat-queue").innerText(), /^\d+$/);
  assert.equal(await page.locator("#tps-chart polyline").count(), 1);
  await screenshot(page, "status");
  await close(page);
});

test("with auth on: the page asks for a key, refuses a wrong one, works with a real one kept in sessionStorage", { skip }, async (t) => {
  const secured = await startTestServer({ models: { stories260K: stories.path, mnist: mnist.path }, config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  t.after(() => secured.cleanup());
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const db = openDatabase(secured.dataDir);
  t.after(() => db.close());
  const keys = new ApiKeyStore(db);
  const user = keys.create({ user: "alice", name: "console", role: "user" });

  const page = await open(secured.url);
  const dialog = page.locator("#auth-dialog[open]");
  await dialog.waitFor();
  await page.fill("#auth-key", "inf_nope_wrongwrongwrong");
  await page.click("#auth-submit");
  await page.waitForFunction(() => document.querySelector("#auth-error")!.textContent!.includes("AUTHENTICATION_FAILED"));
  assert.ok(await dialog.isVisible(), "still asking");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused key is not kept");

  const sent = page.waitForRequest((r) => r.url().endsWith("/models") && r.headers().authorization === `Bearer ${user.key}`);
  await page.fill("#auth-key", user.key);
  await page.click("#auth-submit");
  await ready(page);
  await sent;
  assert.equal(await page.locator("#models-table tbody tr").count(), 2);
  assert.deepEqual(await page.evaluate(() => ({ session: Object.values(sessionStorage), local: localStorage.length, cookie: document.cookie })), {
    session: [user.key], local: 0, cookie: "",
  });

  // A user may not load models: the 403 is shown, not swallowed.
  await page.click('button[aria-label="Load mnist"]');
  await page.locator("#toasts .toast.error .code", { hasText: "AUTHORIZATION_FAILED" }).waitFor();

  // A key revoked later: the next call's 401 asks again.
  keys.revoke(user.id);
  await page.click("#models-refresh");
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the refused key was dropped");
  await close(page);
});

test("only the console's own files are served, and nothing else becomes public", { skip }, async (t) => {
  const secured = await startTestServer({ config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
  t.after(() => secured.cleanup());
  const page = await secured.app.inject({ method: "GET", url: "/" });
  assert.equal(page.statusCode, 200);
  assert.match(page.headers["content-security-policy"] as string, /default-src 'none'; script-src 'self'/);
  assert.equal((await secured.app.inject({ method: "GET", url: "/console/app.js" })).statusCode, 200);
  const hostile = [
    "/../../etc/passwd", "/console/../../etc/passwd", "/console/%2e%2e/package.json", "/console/..%2fpackage.json",
    "/console/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/console/%252e%252e/package.json", "/console/..%5cpackage.json", "/console/.hidden",
    "/console/app.js%00.html", "/console//etc/passwd", "/console/", "/%2e%2e/package.json", "/index.html", "/console",
  ];
  for (const url of hostile) {
    const res = await secured.app.inject({ method: "GET", url });
    assert.ok(res.statusCode === 404 || res.statusCode === 401, `${url} → ${res.statusCode}`);
    assert.doesNotMatch(res.body, /root:|"name": "inferno"/, url);
  }
  // Through a raw socket too, where nothing normalises the path before the server does.
  const port = Number(new URL(secured.url).port);
  for (const url of ["/console/../package.json", "/console/../../../../etc/passwd", "/console/..%2f..%2fpackage.json"]) {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.write(`GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
      let text = "";
      socket.on("data", (d) => (text += d)).on("end", () => resolve(text)).on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 (404|401) /, url);
    assert.doesNotMatch(answer, /root:|"name": "inferno"/, url);
  }
  // Only GET (and HEAD) of the page and its files are public: other methods there, and the API, still need a key.
  for (const [method, url] of [["POST", "/"], ["PUT", "/console/app.js"], ["DELETE", "/console/app.js"], ["GET", "/models"], ["GET", "/metrics/summary"]] as const) {
    assert.equal((await secured.app.inject({ method, url, payload: method === "GET" ? undefined : {} })).statusCode, 401, `${method} ${url}`);
  }
});

test("Pull downloads a model with a progress bar and lists it", { skip }, async (t) => {
  // The file in 8 slices 150 ms apart, so the page shows progress before the download ends.
  const bytes = readFileSync(mnist.path);
  const upstream = createServer(async (req, res) => {
    if (req.url !== "/files/digits.onnx") return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
    const slice = Math.ceil(bytes.length / 8);
    for (let at = 0; at < bytes.length; at += slice) {
      res.write(bytes.subarray(at, at + slice));
      await sleep(150);
    }
    res.end();
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  t.after(() => upstream.close());
  const source = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}/files/digits.onnx`;

  const page = await open(srv.url);
  await ready(page);
  await page.fill("#pull-source", source);
  await page.click("#pull-submit");
  // A determinate bar part-way: the total is known from content-length and some bytes have arrived.
  await page.waitForFunction(() => {
    const bar = document.querySelector("#pull-progress");
    return !bar.hidden && bar.max === 26454 && bar.value > 0 && bar.value < bar.max;
  });
  assert.match(await page.locator("#pull-status").innerText(), /of 25\.8 KB/);
  await page.waitForSelector('tr[data-model="digits"]');
  assert.equal(await page.locator("#pull-status").innerText(), "pulled digits");
  assert.equal(await page.locator("#pull-progress").isHidden(), true);
  const listed = await srv.app.inject({ method: "GET", url: "/models/digits" });
  assert.equal(listed.statusCode, 200);
  assert.equal(JSON.parse(listed.body).type, "onnx");

  // Pulling it again is refused with its code, shown like every API error.
  await page.click("#pull-submit");
  const toast = page.locator("#toasts .toast.error");
  await toast.waitFor();
  assert.equal(await toast.locator(".code").innerText(), "MODEL_EXISTS");
  await close(page);
});
