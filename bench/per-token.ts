/**
 * What each piece of Inferno's per-token work costs on its own, in ns and heap bytes per token:
 * detokenization, the stop-string search, SSE framing, the per-token metrics hook and the async
 * generator chain a token passes through between the runtime and the socket.
 * Run: `npx tsc -p . && node dist/bench/per-token.js [--model PATH] [--tokens N]`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import path from "node:path";
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import type { Token } from "node-llama-cpp";
import type { GenerationChunk, GenerationResult, GenerationStream } from "../src/core/generation.js";
import { StopMatcher } from "../src/core/stop-matcher.js";
import { mapGeneration } from "../src/core/stream-utils.js";
import { nativeSse } from "../src/dialects/native.js";
import { TokenTextDecoder } from "../src/runtimes/llama/token-text-decoder.js";
import { repoRoot } from "./args.js";
import { openLlama, RawLlama } from "./raw-llama.js";
import { median } from "./stats.js";

v8.setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

interface Cost {
  name: string;
  nsPerToken: number;
  bytesPerToken: number;
}

/**
 * Times `run(n)` (which handles n tokens) over many rounds, and measures its allocation as the heap growth
 * of small rounds after a full GC (median over rounds, so a round that a scavenge interrupted does not count).
 */
async function measure(name: string, tokens: number, run: (n: number) => unknown): Promise<Cost> {
  for (let i = 0; i < 3; i++) await run(tokens);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const start = process.hrtime.bigint();
    await run(tokens);
    times.push(Number(process.hrtime.bigint() - start) / tokens);
  }
  const small = Math.min(tokens, 200);
  const bytes: number[] = [];
  for (let i = 0; i < 15; i++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    await run(small);
    bytes.push((process.memoryUsage().heapUsed - before) / small);
  }
  return { name, nsPerToken: median(times), bytesPerToken: Math.max(0, median(bytes)) };
}

/** A generation stream of ready-made chunks, as the runtime hands them on, with no model behind it. */
async function* fakeGeneration(pieces: readonly string[], n: number): GenerationStream {
  for (let i = 0; i < n; i++) yield { text: pieces[i % pieces.length]!, index: i };
  const result: GenerationResult = {
    text: "", finishReason: "length", promptTokens: 5, completionTokens: n, cachedPromptTokens: 4, timeToFirstTokenMs: 1, totalMs: 1,
  };
  return result;
}

/** The route's per-token path without the socket: observed stream → mapGeneration → for await → frame. */
async function chain(pieces: readonly string[], n: number): Promise<number> {
  const stream = fakeGeneration(pieces, n);
  const next = stream.next.bind(stream);
  stream.next = (...args) => next(...args).then((step) => step); // observeStream's per-token .then
  let bytes = 0;
  const events = mapGeneration<object>(stream, (c: GenerationChunk) => nativeSse.chunk(c.text, c.index), (r) => [nativeSse.done(r)]);
  for await (const event of events) bytes += `data: ${JSON.stringify(event)}\n\n`.length;
  return bytes;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: "string" }, tokens: { type: "string" } } });
  const modelPath = path.resolve(values.model ?? path.join(repoRoot, "../shared/models/stories260K.gguf"));
  const count = Number(values.tokens ?? 1000);
  const llama = await openLlama(1);
  const raw = await RawLlama.open(llama, modelPath, { contextSize: 2048, sequences: 1, threads: 1, batchSize: 512 });
  try {
    const prompt = raw.tokenize("Once upon a time");
    const generated: Token[] = await raw.tokens(prompt, count);
    const model = raw.model;
    const pieces = (() => {
      const d = new TokenTextDecoder(model, prompt);
      return generated.map((t) => d.push(t));
    })();
    const textLength = pieces.reduce((n, p) => n + p.length, 0);
    const stopSets: Array<[string, string[]]> = [
      ["stop strings: none", []],
      ["stop strings: 1 (\"\\n\\n\")", ["\n\n"]],
      ["stop strings: 4 words", ["The End", "Once upon", "Lily said", "moral of"]],
      ["stop strings: 1 of 64 chars", ["x".repeat(63) + "y"]],
    ];
    const costs: Cost[] = [];
    costs.push(
      await measure("detokenize (TokenTextDecoder.push)", generated.length, (n) => {
        const d = new TokenTextDecoder(model, prompt);
        for (let i = 0; i < n; i++) d.push(generated[i % generated.length]!);
      }),
    );
    for (const [name, stops] of stopSets) {
      costs.push(
        await measure(name, pieces.length, (n) => {
          const m = new StopMatcher(stops);
          for (let i = 0; i < n; i++) m.push(pieces[i % pieces.length]!);
        }),
      );
    }
    costs.push(
      await measure("SSE framing (native event + JSON + frame)", pieces.length, (n) => {
        let bytes = 0;
        for (let i = 0; i < n; i++) bytes += `data: ${JSON.stringify(nativeSse.chunk(pieces[i % pieces.length]!, i))}\n\n`.length;
        return bytes;
      }),
    );
    let counter = 0;
    costs.push(await measure("metrics (per-token counter)", pieces.length, (n) => { for (let i = 0; i < n; i++) counter++; }));
    costs.push(await measure("generator chain + framing, no async context", pieces.length, (n) => chain(pieces, n)));
    const als = new AsyncLocalStorage<string>();
    costs.push(await measure("generator chain + framing, AsyncLocalStorage on", pieces.length, (n) => als.run("request", () => chain(pieces, n))));
    console.log(`model ${modelPath}; ${generated.length} greedy tokens, ${textLength} characters; node ${process.version}`);
    const width = Math.max(...costs.map((c) => c.name.length));
    console.log(`${"per token".padEnd(width)}  ${"ns".padStart(8)}  ${"bytes".padStart(6)}`);
    for (const c of costs) console.log(`${c.name.padEnd(width)}  ${c.nsPerToken.toFixed(0).padStart(8)}  ${c.bytesPerToken.toFixed(0).padStart(6)}`);
    if (counter < 0) console.log(counter);
  } finally {
    await raw.dispose();
    await llama.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
