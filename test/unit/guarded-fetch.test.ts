// The server-side pull's fetch: private addresses refused on every connection, redirects included.
// Against a real HTTP server on 127.0.0.1; needs no model.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { PrivateAddressError, guardedFetch } from "../../src/pull/guarded-fetch.js";

let server: http.Server;
let base: string;
let port: number;
const seen: string[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    if (req.url === "/file") return void res.writeHead(200, { etag: '"e"', "content-length": 5 }).end("hello");
    if (req.url === "/range") return void res.writeHead(206, { "content-range": `bytes 1-4/5`, "x-range": req.headers.range }).end("ello");
    if (req.url === "/to-file") return void res.writeHead(302, { location: "/file" }).end();
    if (req.url === "/to-private") return void res.writeHead(307, { location: `http://127.0.0.2:${port}/file` }).end();
    if (req.url === "/to-ftp") return void res.writeHead(302, { location: "ftp://example.com/x" }).end();
    if (req.url === "/loop") return void res.writeHead(302, { location: "/loop" }).end();
    if (req.url === "/stall") return void res.writeHead(200, { "content-length": 10 }).write("12345");
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

// Only 127.0.0.1 counts as public here, so the test server is reachable and any other address is not.
const onlyLoopbackOne = guardedFetch({ allowPrivate: false, isRefused: (a) => a !== "127.0.0.1" });

test("by default, loopback is refused by IP and by name, before any request is sent", async () => {
  const strict = guardedFetch({ allowPrivate: false });
  const count = seen.length;
  for (const url of [`${base}/file`, `http://localhost:${port}/file`, `http://[::ffff:127.0.0.1]:${port}/file`]) {
    await assert.rejects(strict(url), (err: unknown) => err instanceof PrivateAddressError && /pullAllowPrivate/.test(err.message), url);
  }
  assert.equal(seen.length, count);
});

test("a response streams with its status and headers; request headers go through", async () => {
  const res = await onlyLoopbackOne(`${base}/file`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("etag"), '"e"');
  assert.equal(await res.text(), "hello");
  const ranged = await onlyLoopbackOne(`${base}/range`, { headers: { range: "bytes=1-" } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers.get("x-range"), "bytes=1-");
  assert.equal(await ranged.text(), "ello");
  const open = guardedFetch({ allowPrivate: true });
  assert.equal(await (await open(`${base}/to-file`)).text(), "hello");
});

test("redirects are followed and each hop is checked: a redirect to a refused address fails", async () => {
  assert.equal(await (await onlyLoopbackOne(`${base}/to-file`)).text(), "hello");
  const count = seen.length;
  await assert.rejects(onlyLoopbackOne(`${base}/to-private`), (err: unknown) => err instanceof PrivateAddressError && err.address === "127.0.0.2");
  assert.deepEqual(seen.slice(count), ["/to-private"]);
  await assert.rejects(onlyLoopbackOne(`${base}/to-ftp`), /ftp: URL refused/);
  await assert.rejects(guardedFetch({ allowPrivate: true, maxRedirects: 3 })(`${base}/loop`), /more than 3 redirects/);
});

test("an upstream that goes silent fails after idleTimeoutMs; an abort stops the body", async () => {
  const impatient = guardedFetch({ allowPrivate: true, idleTimeoutMs: 200 });
  const res = await impatient(`${base}/stall`);
  await assert.rejects(res.text());
  const controller = new AbortController();
  const stalled = await guardedFetch({ allowPrivate: true })(`${base}/stall`, { signal: controller.signal });
  const reading = stalled.text();
  controller.abort();
  await assert.rejects(reading);
});
