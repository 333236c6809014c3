import { mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../src/config/config.js";
import type { ModelRegistry } from "../src/registry/model-registry.js";
import { OnnxModel } from "../src/runtimes/onnx/onnx-model.js";
import { buildServer } from "../src/server.js";

/** Per-model options of `POST /models/{id}/load`. */
export interface OnnxLoadOptions {
  max_batch_size?: number;
  max_queue_delay_us?: number;
}

export interface OnnxBenchServer {
  url: string;
  app: FastifyInstance;
  /** Loads (or reloads) a model with these options and returns the options it reports. */
  load(id: string, options: OnnxLoadOptions): Promise<Record<string, unknown>>;
  /** A reader of a loaded model's session runs so far (a merged batch counts once), cheap enough to call anywhere. */
  sessionRunCounter(id: string): Promise<() => number>;
  close(): Promise<void>;
}

/**
 * A real Inferno on an ephemeral loopback port. `models` maps ids to .onnx files, which are linked into a
 * throwaway models dir, so one file can be served under several ids, each loaded with its own options.
 */
export async function startOnnxInferno(opts: { models: Record<string, string>; threads: number; ipcSocket?: string }): Promise<OnnxBenchServer> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-onnx-bench-"));
  const modelsDir = path.join(tmp, "models");
  await mkdir(modelsDir);
  const roots = new Set<string>();
  for (const [id, file] of Object.entries(opts.models)) {
    const real = await realpath(file);
    roots.add(path.dirname(real));
    await symlink(real, path.join(modelsDir, `${id}.onnx`));
  }
  const config = loadConfig({
    env: {},
    flags: {
      port: 0,
      onnxProvider: "cpu",
      onnxIntraOpThreads: opts.threads,
      onnxInterOpThreads: 1,
      // Never unload a model between scenarios: a reload would drop the options it was loaded with.
      keepAlive: -1,
      ...(opts.ipcSocket ? { ipcSocket: opts.ipcSocket } : {}),
      logLevel: "silent",
      modelsDir,
      dataDir: path.join(tmp, "data"),
      modelRoots: [...roots],
    },
  });
  const app = await buildServer(config);
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
  } catch (err) {
    await app.close();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  // buildServer decorates the app with its registry; the bench reads session counts from it, nothing else.
  const registry = (app as unknown as { registry: ModelRegistry }).registry;
  return {
    url,
    app,
    load: async (id, options) => {
      const res = await fetch(`${url}/models/${id}/load`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(options),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`loading ${id} failed: ${res.status} ${text}`);
      return (JSON.parse(text) as { options: Record<string, unknown> }).options;
    },
    sessionRunCounter: async (id) => {
      const model = await registry.acquire(id);
      if (!(model instanceof OnnxModel)) throw new Error(`${id} is not an ONNX model`);
      return () => model.engineRuns.runs;
    },
    close: async () => {
      await app.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
