// Runs in a short-lived child process (forked by GgufProbe): opens GGUF files with llama.cpp the way
// the server will, so that a file whose content trips one of llama.cpp's asserts aborts this process,
// not the server. Each request is answered on the IPC channel; an abort is seen by the parent as an exit.
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import type { ProbeReply, ProbeRequest } from "./probe-protocol.js";

const nativeErrors: string[] = [];
const nativeWarnings: string[] = [];
let llama: Promise<Llama> | undefined;

function backend(): Promise<Llama> {
  llama ??= getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: 1,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (text && (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)) nativeErrors.push(text);
      else if (text && level === LlamaLogLevel.warn) nativeWarnings.push(text);
    },
  });
  return llama;
}

async function probe(request: ProbeRequest): Promise<ProbeReply> {
  const started = performance.now();
  nativeErrors.length = 0;
  nativeWarnings.length = 0;
  const lib = await backend();
  let model;
  try {
    // Loading checks the vocabulary, hyperparameters and every tensor's name, type and shape; the
    // context builds the compute graph, where the shape asserts live; a decode runs the kernels, which
    // assert on values (a NaN norm epsilon). Weights are mapped, so a decode's reads warm the page cache
    // for the load that follows.
    model = await lib.loadModel({ modelPath: request.path, gpuLayers: 0, useMmap: true });
    const context = await model.createContext({ contextSize: request.contextSize, sequences: 1, batchSize: request.contextSize, threads: 1 });
    try {
      // One token is enough to run every kernel of the graph once; more would only cost time on big models.
      const first = model.tokens.bos ?? model.tokenize("Once", false)[0];
      if (first !== undefined) {
        for await (const token of context.getSequence().evaluate([first])) {
          model.detokenize([token]);
          break;
        }
      }
    } finally {
      await context.dispose();
    }
    return { id: request.id, ok: true, ms: performance.now() - started };
  } catch (err) {
    // llama.cpp's log lines reach JS through a thread-safe callback, after the failed call returns.
    await new Promise((resolve) => setTimeout(resolve, 25));
    const detail = nativeErrors.filter((line) => !/failed to load model$/.test(line));
    const reason = [...new Set(detail.length ? detail : nativeWarnings)].slice(-3).join("; ");
    return { id: request.id, ok: false, message: reason || (err as Error).message, ms: performance.now() - started };
  } finally {
    await model?.dispose().catch(() => undefined);
  }
}

process.on("message", (message: ProbeRequest) => {
  probe(message).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: message.id, ok: false, message: (err as Error).message, ms: 0, backend: true } satisfies ProbeReply),
  );
});
process.on("disconnect", () => process.exit(0));
// Started ahead of the first request, so that a probe right after a crash finds the backend ready.
backend().catch(() => undefined);
