// The peer bench's pure parts (bench/peer.ts): its arguments, where it looks for llama-server (in which
// order), the llama-server command line, and the llama-server SSE client against a fake server. Builds
// nothing and runs no model.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { cachedLlamaServerPath, findLlamaServer, infernoCacheDir, llamaCppTag } from "../../src/runtimes/llama-server/llama-server-bin.js";
import { streamCompletion } from "../../bench/llama-server-client.js";
import { llamaServerArgs } from "../../bench/llama-server.js";
import { defaultThreadList, formatThreads, parsePeerArgs, type PeerOptions } from "../../bench/peer-args.js";
import { firstRequestTokens } from "../../bench/peer-loop.js";
import { repoRoot } from "../helpers/paths.js";

const parse = (...argv: string[]) => parsePeerArgs(argv) as PeerOptions;

describe("peer bench arguments", () => {
  it("defaults: 8 sequences, 1/8/32 clients, 128 tokens, pp512, 3 runs, every engine, the generated model", () => {
    const o = parse();
    assert.deepEqual(o.clients, [1, 8, 32]);
    assert.equal(o.parallel, 8);
    assert.equal(o.maxTokens, 128);
    assert.equal(o.ppTokens, 512);
    assert.equal(o.runs, 3);
    assert.equal(o.model, undefined);
    assert.deepEqual(o.engines, ["llama-server", "raw", "inferno", "inferno-ls"]);
    assert.equal(o.build, true);
    assert.deepEqual(o.threadList, defaultThreadList());
    assert.equal(o.streamIntervalMs, undefined, "Inferno's own default");
  });

  it("--stream-interval-ms goes to Inferno as a whole number of ms, 0 included", () => {
    assert.equal(parse("--stream-interval-ms", "20").streamIntervalMs, 20);
    assert.equal(parse("--stream-interval-ms", "0").streamIntervalMs, 0);
    assert.throws(() => parse("--stream-interval-ms", "-1"), /--stream-interval-ms/);
    assert.throws(() => parse("--stream-interval-ms", "1.5"), /--stream-interval-ms/);
  });

  it("--quick shortens the runs; explicit flags still win", () => {
    const q = parse("--quick");
    assert.equal(q.runs, 1);
    assert.ok(q.windowSeconds < parse().windowSeconds);
    assert.equal(parse("--quick", "--runs", "2").runs, 2);
  });

  it("thread settings: T for every batch, T/B for one-token and larger batches", () => {
    assert.deepEqual(parse("--thread-list", "1, 2,1/2").threadList, [
      { threads: 1, batchThreads: 1 },
      { threads: 2, batchThreads: 2 },
      { threads: 1, batchThreads: 2 },
    ]);
    assert.equal(formatThreads({ threads: 2, batchThreads: 2 }), "2");
    assert.equal(formatThreads({ threads: 1, batchThreads: 2 }), "1/2");
    assert.deepEqual(parse("--thread-list", "1,auto").threadList, [
      { threads: 1, batchThreads: 1 },
      { threads: os.availableParallelism(), batchThreads: os.availableParallelism(), auto: true },
    ]);
    assert.equal(formatThreads({ threads: 2, batchThreads: 2, auto: true }), "auto");
    assert.throws(() => parse("--thread-list", "1/2/3"), /T or T\/B/);
    assert.throws(() => parse("--thread-list", "0"), /positive integer/);
  });

  it("the default thread list: 1, every core, Inferno's default counts, without repeats, and auto", () => {
    assert.deepEqual(defaultThreadList(2).map(formatThreads), ["1", "2", "1/2", "auto"]);
    assert.deepEqual(defaultThreadList(8).map(formatThreads), ["1", "8", "7/8", "auto"]);
    assert.deepEqual(defaultThreadList(1).map(formatThreads), ["1"]);
  });

  it("engines keep the report's order; the model path is resolved; bad values name the flag", () => {
    assert.deepEqual(parse("--engines", "inferno,llama-server").engines, ["llama-server", "inferno"]);
    assert.equal(parse("--model", "m.gguf").model, path.resolve("m.gguf"));
    assert.equal(parse("--no-build").build, false);
    assert.throws(() => parse("--engines", "vllm"), /--engines/);
    assert.throws(() => parse("--window", "0"), /--window/);
    assert.throws(() => parse("--context-size", "256"), /--context-size 256 is too small/);
    assert.throws(() => parse("--bogus"));
    assert.equal(parsePeerArgs(["--help"]), "help");
  });
});

describe("closed-loop staggering", () => {
  it("first requests spread over the request length; one client always asks for the full length", () => {
    assert.deepEqual(
      Array.from({ length: 8 }, (_, i) => firstRequestTokens(i, 8, 128)),
      [128, 112, 96, 80, 64, 48, 32, 16],
    );
    assert.equal(firstRequestTokens(0, 1, 128), 128);
    const of32 = Array.from({ length: 32 }, (_, i) => firstRequestTokens(i, 32, 128));
    assert.ok(of32.every((n) => n >= 1 && n <= 128));
  });
});

describe("finding llama-server", () => {
  const tag = llamaCppTag(repoRoot);
  const env = { HOME: "/home/u" };

  it("the cache dir: INFERNO_CACHE_DIR, else XDG_CACHE_HOME/inferno, else ~/.cache/inferno; cpu, cpu-src or cuda by tag", () => {
    assert.equal(infernoCacheDir({ INFERNO_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" }), "/c");
    assert.equal(infernoCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/h" }), "/x/inferno");
    assert.equal(infernoCacheDir({ HOME: "/h" }), "/h/.cache/inferno");
    assert.equal(cachedLlamaServerPath("b1", { HOME: "/h" }), "/h/.cache/inferno/llama-server/b1-cpu/bin/llama-server");
    assert.equal(cachedLlamaServerPath("b1", { HOME: "/h", INFERNO_LLAMA_CUDA: "1" }), "/h/.cache/inferno/llama-server/b1-cuda/bin/llama-server");
    assert.equal(cachedLlamaServerPath("b1", { HOME: "/h", INFERNO_LLAMA_FROM_SOURCE: "1" }), "/h/.cache/inferno/llama-server/b1-cpu-src/bin/llama-server");
  });

  it("INFERNO_LLAMA_SERVER comes first, even when a cached build exists", () => {
    const found = findLlamaServer({ repoRoot, env: { ...env, INFERNO_LLAMA_SERVER: "/opt/llama-server" }, usable: () => true });
    assert.deepEqual(found, { path: "/opt/llama-server", from: "INFERNO_LLAMA_SERVER" });
  });

  it("a named binary that cannot run is an error, not a silent fallback to the cache", () => {
    const usable = (f: string) => f !== "/opt/missing";
    assert.throws(() => findLlamaServer({ repoRoot, env: { ...env, INFERNO_LLAMA_SERVER: "/opt/missing" }, usable }), /INFERNO_LLAMA_SERVER/);
  });

  it("then the build script's cache for node-llama-cpp's llama.cpp tag; else nothing", () => {
    const cached = `/home/u/.cache/inferno/llama-server/${tag}-cpu/bin/llama-server`;
    const looked: string[] = [];
    const found = findLlamaServer({ repoRoot, env, usable: (f) => (looked.push(f), f === cached) });
    assert.deepEqual(found, { path: cached, from: "cache" });
    assert.deepEqual(looked, [cached]);
    assert.equal(findLlamaServer({ repoRoot, env, usable: () => false }), undefined);
  });
});

describe("llama-server command line", () => {
  it("gets the same threads, slots, context per slot and batch as the other sides", () => {
    const args = llamaServerArgs({ modelPath: "/m.gguf", threads: 1, batchThreads: 2, parallel: 8, contextSize: 1024, batchSize: 512 }, 4567);
    const flag = (name: string) => args[args.indexOf(name) + 1];
    assert.equal(flag("--threads"), "1");
    assert.equal(flag("--threads-batch"), "2");
    assert.equal(flag("--parallel"), "8");
    assert.equal(flag("--ctx-size"), "8192");
    assert.equal(flag("--batch-size"), "512");
    assert.equal(flag("--ubatch-size"), "512");
    assert.equal(flag("--host"), "127.0.0.1");
    assert.equal(flag("--port"), "4567");
  });
});

describe("llama-server SSE client", () => {
  let server: http.Server;
  let url: string;
  let body: Record<string, unknown> = {};
  const event = (o: object) => `data: ${JSON.stringify(o)}\n\n`;

  before(async () => {
    server = http.createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c));
      req.on("end", () => {
        body = JSON.parse(text) as Record<string, unknown>;
        res.writeHead(200, { "content-type": "text/event-stream" });
        // One token per event, then two in one event (bytes held back until they form a character), split across writes.
        res.write(event({ index: 0, content: "a", tokens: [5], stop: false, id_slot: -1, tokens_predicted: 1, tokens_evaluated: 4 }));
        const both = event({ index: 0, content: "é", tokens: [7, 8], stop: false, id_slot: -1, tokens_predicted: 3, tokens_evaluated: 4 });
        res.write(both.slice(0, 20));
        setTimeout(() => {
          res.write(both.slice(20));
          res.end(event({ index: 0, content: "", tokens: [], stop: true, tokens_predicted: 3, stop_type: "limit", timings: {} }));
        }, 5);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("asks for a greedy, fixed-length stream and counts every token, several in one event included", async () => {
    const agent = new http.Agent({ keepAlive: false });
    let onToken = 0;
    const t = await streamCompletion(agent, url, { prompt: "Once", maxTokens: 3, cachePrompt: false }, { onToken: () => onToken++ });
    assert.deepEqual(body, { prompt: "Once", n_predict: 3, stream: true, temperature: 0, ignore_eos: true, cache_prompt: false });
    assert.equal(t.tokens, 3);
    assert.equal(onToken, 3);
    assert.equal(t.finishReason, "length");
    assert.ok(t.firstTokenMs >= t.startMs && t.lastTokenMs > t.firstTokenMs && t.endMs >= t.lastTokenMs);
    agent.destroy();
  });
});
