import { mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../src/config/config.js";
import { buildServer } from "../src/server.js";

export interface BenchServer {
  url: string;
  /** The id under which the model is served (its file name without `.gguf`). */
  modelId: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * A real Inferno on an ephemeral loopback port, serving one GGUF file from a throwaway models dir.
 * The model loads on the first request, so the caller's warm-up pays for it.
 */
export async function startInferno(opts: {
  modelPath: string;
  threads: number;
  parallel: number;
  contextSize: number;
  batchSize: number;
}): Promise<BenchServer> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-bench-"));
  const modelsDir = path.join(tmp, "models");
  await mkdir(modelsDir);
  const real = await realpath(opts.modelPath);
  const modelId = path.basename(real, ".gguf");
  await symlink(real, path.join(modelsDir, `${modelId}.gguf`));
  const config = loadConfig({
    env: {},
    flags: {
      port: 0,
      gpu: "cpu",
      threads: opts.threads,
      parallel: opts.parallel,
      contextSize: opts.contextSize,
      batchSize: opts.batchSize,
      logLevel: "silent",
      modelsDir,
      dataDir: path.join(tmp, "data"),
      modelRoots: [path.dirname(real)],
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
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    modelId,
    app,
    close: async () => {
      await app.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
