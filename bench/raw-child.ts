// The peer bench's raw node-llama-cpp side, in a process of its own (forked by peer-engines.ts with
// llamaProcessEnv(), as Inferno's processes run): one context with `parallel` sequences, requests that
// wait for a free sequence when all are busy (as a server's queue), greedy with end-of-generation banned
// (ignore_eos, the same bias Inferno uses). Answers the parent's requests over IPC; exits on disconnect.
import type { RawChildRequest, RawChildSpec } from "./peer-engines.js";
import { staggeredLoop } from "./peer-loop.js";
import { GREEDY, openLlama, RawLlama } from "./raw-llama.js";
import type { StreamTiming } from "./stats.js";
import { eogBan } from "../src/runtimes/llama/eog-ban.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as RawChildSpec;
const llama = await openLlama(Math.max(spec.threads, spec.batchThreads));
const raw = await RawLlama.open(llama, spec.modelPath, {
  contextSize: spec.contextSize,
  sequences: spec.parallel,
  threads: spec.batchThreads,
  decodeThreads: spec.threads,
  batchSize: spec.batchSize,
  sequenceOrder: spec.sequenceOrder,
});
// The vocabulary as Inferno counts it (llama-text-model.ts): the GGUF's token list, else the embedding rows.
const list = (raw.model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
const embd = raw.model.fileInfo.fullTensorInfo?.find((t) => t.name === "token_embd.weight");
const vocabularySize = Array.isArray(list) ? list.length : Number(embd?.dimensions[1] ?? 0);
raw.sampling = { ...GREEDY, tokenBias: eogBan(raw.model, vocabularySize) };

/** Free sequences, the last released first: one request at a time always gets the same sequence, whose cache holds its prompt. */
const free = Array.from({ length: raw.parallel }, (_, i) => i);
const waiting: Array<(sequence: number) => void> = [];

function acquire(signal: AbortSignal): Promise<number> {
  const sequence = free.shift();
  if (sequence !== undefined) return Promise.resolve(sequence);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      waiting.splice(waiting.indexOf(grant), 1);
      reject(new Error("abandoned while waiting"));
    };
    const grant = (s: number) => {
      signal.removeEventListener("abort", onAbort);
      resolve(s);
    };
    waiting.push(grant);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function release(sequence: number): void {
  const next = waiting.shift();
  if (next) next(sequence);
  else free.unshift(sequence);
}

/** One request: wait for a sequence, generate on it. */
async function generate(prompt: string, maxTokens: number, signal: AbortSignal, deadlineMs = Infinity, onToken?: (now: number) => void): Promise<StreamTiming> {
  const sequence = await acquire(signal);
  try {
    return await raw.generate(raw.tokenize(prompt), maxTokens, sequence, deadlineMs, onToken);
  } finally {
    release(sequence);
  }
}

async function answer(msg: RawChildRequest): Promise<unknown> {
  const never = new AbortController().signal;
  switch (msg.op) {
    case "stats": {
      const cpu = process.cpuUsage();
      return { rss: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system };
    }
    case "tokenCount":
      return raw.tokenize(msg.text).length;
    case "stream": {
      const t = await generate(msg.prompt, msg.maxTokens, never);
      return { ...t, startMs: 0, firstTokenMs: t.firstTokenMs - t.startMs, lastTokenMs: t.lastTokenMs - t.startMs, endMs: t.endMs - t.startMs };
    }
    case "streams":
      return Promise.all(Array.from({ length: msg.streams }, () => generate(msg.prompt, msg.maxTokens, never)));
    case "loop":
      return staggeredLoop(msg.clients, msg.windowMs, msg.maxTokens, (tokens, signal, onToken, deadlineMs) =>
        generate(msg.prompt, tokens, signal, deadlineMs, onToken),
      );
  }
}

process.on("message", (msg: RawChildRequest & { id: number }) => {
  answer(msg).then(
    (result) => process.send?.({ id: msg.id, result }),
    (err: unknown) => process.send?.({ id: msg.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on("disconnect", () => {
  raw
    .dispose()
    .then(() => llama.dispose())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
});
process.send?.({ ready: true });
