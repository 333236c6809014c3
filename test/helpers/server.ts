import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import type { GenerationStream } from "../../src/core/generation.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { loadConfig, type ConfigInput } from "../../src/config/config.js";
import { buildServer } from "../../src/server.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "./paths.js";

export interface TestServer {
  app: FastifyInstance;
  url: string;
  /** host:port of the gRPC listener (when grpcEnabled). */
  grpcAddress: string | undefined;
  modelsDir: string;
  dataDir: string;
  /** Closes the app; the temp folders stay until cleanup (so a restart can reuse them). */
  close: () => Promise<void>;
  cleanup: () => Promise<void>;
}

/**
 * A real server on an ephemeral loopback port with its own models and data dirs. `models` maps ids to
 * model files to symlink in (their folders become model roots); `tinyModels` lists ids for generated
 * tiny llama fixtures.
 */
export async function startTestServer(opts: {
  models?: Record<string, string>;
  tinyModels?: string[];
  /** Files written into the models dir by name (e.g. generated ONNX fixtures). */
  files?: Record<string, Buffer>;
  config?: Partial<ConfigInput>;
  dirs?: { modelsDir: string; dataDir: string };
} = {}): Promise<TestServer> {
  const tmp = opts.dirs ? undefined : await tempDir();
  const modelsDir = opts.dirs?.modelsDir ?? path.join(tmp!.dir, "models");
  const dataDir = opts.dirs?.dataDir ?? path.join(tmp!.dir, "data");
  await mkdir(modelsDir, { recursive: true });
  for (const [id, file] of Object.entries(opts.models ?? {})) {
    await symlink(file, path.join(modelsDir, `${id}${path.extname(file)}`)).catch(() => {});
  }
  for (const id of opts.tinyModels ?? []) await writeTinyLlamaGguf(path.join(modelsDir, `${id}.gguf`));
  for (const [id, buf] of Object.entries(opts.files ?? {})) await writeFile(path.join(modelsDir, id), buf);
  const config = loadConfig({
    env: {},
    flags: {
      port: 0, grpcPort: 0, threads: 1, parallel: 4, contextSize: 256, logLevel: "silent", modelsDir, dataDir,
      // Each test sees only the models it puts in; the demo models have their own tests (demo-models.test.ts).
      demoModels: false,
      // Linked model files stay where they are, so their folders are allowed roots.
      modelRoots: [...new Set(Object.values(opts.models ?? {}).map((f) => path.dirname(f)))],
      ...opts.config,
    },
  });
  const app = await buildServer(config);
  let port = 0;
  let grpcPort: number | undefined;
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    port = typeof address === "object" && address ? address.port : 0;
    grpcPort = config.grpcEnabled ? await app.grpc.listen("127.0.0.1", 0) : undefined;
    if (config.ipcSocket) await app.ipc.listen();
  } catch (err) {
    await app.close();
    await tmp?.cleanup();
    throw err;
  }
  return {
    app,
    url: `http${config.tlsCert ? "s" : ""}://127.0.0.1:${port}`,
    grpcAddress: grpcPort === undefined ? undefined : `127.0.0.1:${grpcPort}`,
    modelsDir,
    dataDir,
    close: () => app.close(),
    cleanup: async () => {
      await app.close();
      await tmp?.cleanup();
    },
  };
}

/**
 * Holds one sequence of a loaded GGUF model with a greedy stream nobody reads, as an open request would:
 * deterministic, unlike a real generation that a random-weight model may end early at end-of-text.
 * `.return()` on the stream gives the sequence back.
 */
export function holdSequence(app: FastifyInstance, id: string): Promise<GenerationStream> {
  const model = app.registry.getLoaded(id) as LlamaTextModel;
  const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0 };
  return model.start({ model: id, prompt: "hold", maxTokens: 8, stop: [], sampling }, new AbortController().signal);
}

/**
 * Waits, polling every `stepMs` for up to `ms`, until the model has no request in flight: a request whose client
 * left is counted out of the HTTP metrics at once, but leaves the model only when its generation has stopped.
 */
export async function waitIdle(model: { readonly inFlight: number }, ms = 2000, stepMs = 10): Promise<void> {
  for (let waited = 0; waited < ms && model.inFlight > 0; waited += stepMs) await sleep(stepMs);
}

/** POST JSON and parse the JSON answer. */
export async function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Reads an SSE response into its parsed `data:` payloads. */
export async function readSse(res: Response): Promise<any[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .map((block) => block.trim())
    .filter((b) => b.startsWith("data: "))
    .map((b) => {
      const data = b.slice(6);
      return data === "[DONE]" ? "[DONE]" : JSON.parse(data);
    });
}
