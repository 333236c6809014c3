import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * libuv's thread pool size Inferno runs with unless the user sets UV_THREADPOOL_SIZE.
 *
 * node-llama-cpp runs every llama_decode as a libuv work item. With Node's default of 4 pool threads the
 * decodes of one context hop from pool thread to pool thread, and with more than one llama.cpp thread the
 * compute threads of consecutive graphs land on the cores unevenly: on a 2-core machine, 2 llama.cpp
 * threads decoded the 85M bench model at 52–64 tokens/s with 4 pool threads, 116–173 with 2, and 196–222
 * with 1 (raw node-llama-cpp, prebuilt binary; see README, Threads). One pool thread keeps every decode on
 * the same OS thread. It is read once, when the pool starts, so it must be in the environment before the
 * process does any asynchronous file, DNS or crypto work: the CommonJS entry `main.cts` sets it.
 */
export const UV_THREADPOOL_DEFAULT = "1";

/** The environment a child process running llama.cpp work should get: the user's value, else the default. */
export function llamaProcessEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, UV_THREADPOOL_SIZE: env.UV_THREADPOOL_SIZE ?? UV_THREADPOOL_DEFAULT };
}

/**
 * Whether node-llama-cpp's addon is the one scripts/build-llama-addon.sh builds (with
 * patches/node-llama-cpp-threadpool.patch), which decodes on a persistent ggml thread pool: its marker sits
 * beside the addon in the platform package. NLC_NO_THREADPOOL=1 turns the pool off, so it counts as absent.
 */
export function pooledLlamaAddon(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NLC_NO_THREADPOOL || process.platform !== "linux") return false;
  const platform = `linux-${process.arch}`;
  try {
    // The package's main is dist/index.js; its binaries are in bins/<platform>.
    const main = createRequire(import.meta.url).resolve(`@node-llama-cpp/${platform}`);
    return existsSync(path.join(path.dirname(path.dirname(main)), "bins", platform, "_infernoAddon"));
  } catch {
    return false;
  }
}
