// Where Inferno (the llama-server engine) and the peer bench find llama.cpp's llama-server: the binary
// scripts/build-llama-server.sh builds from the llama.cpp source node-llama-cpp ships, in a cache outside
// the repository, or the one INFERNO_LLAMA_SERVER (config `llamaServer`) names.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Inferno's cache for things built or generated outside the repository (llama-server, bench models). */
export function infernoCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.INFERNO_CACHE_DIR) return env.INFERNO_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), ".cache"), "inferno");
}

/**
 * The llama.cpp release tag node-llama-cpp's bundled source was taken from (`llama/llama.cpp.info.json`),
 * under repoRoot's node_modules, or wherever this process resolves node-llama-cpp from.
 */
export function llamaCppTag(repoRoot?: string): string {
  const file = repoRoot
    ? path.join(repoRoot, "node_modules/node-llama-cpp/llama/llama.cpp.info.json")
    : fileURLToPath(new URL("../llama/llama.cpp.info.json", import.meta.resolve("node-llama-cpp")));
  const tag = (JSON.parse(readFileSync(file, "utf8")) as { tag?: unknown }).tag;
  if (typeof tag !== "string" || tag === "") throw new Error(`no llama.cpp tag in ${file}`);
  return tag;
}

/**
 * The build script's output for a tag: `<cache>/llama-server/<tag>-<variant>/bin/llama-server`, where the
 * variant is `cuda` (INFERNO_LLAMA_CUDA=1), `cpu-src` (INFERNO_LLAMA_FROM_SOURCE=1: llama.cpp compiled
 * here) or `cpu` (the server on node-llama-cpp's prebuilt libraries).
 */
export function cachedLlamaServerPath(tag: string, env: NodeJS.ProcessEnv = process.env): string {
  const variant = env.INFERNO_LLAMA_CUDA === "1" ? "cuda" : env.INFERNO_LLAMA_FROM_SOURCE === "1" ? "cpu-src" : "cpu";
  return path.join(infernoCacheDir(env), "llama-server", `${tag}-${variant}`, "bin", "llama-server");
}

const isExecutable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export interface FindOptions {
  /** Where node_modules is; by default, where this process resolves node-llama-cpp from. */
  repoRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** How a candidate is checked; executable files by default (tests pass a fake). */
  usable?: (file: string) => boolean;
}

/** Where a binary was found, and which lookup found it. */
export interface Found {
  path: string;
  from: "INFERNO_LLAMA_SERVER" | "cache";
}

/**
 * The llama-server to run: `INFERNO_LLAMA_SERVER` when set (an error if it is not usable: a path the user
 * named should not be silently replaced), else the build script's cached binary for the current tag, else
 * undefined.
 */
export function findLlamaServer(opts: FindOptions): Found | undefined {
  const env = opts.env ?? process.env;
  const usable = opts.usable ?? isExecutable;
  const named = env.INFERNO_LLAMA_SERVER;
  if (named) {
    if (!usable(named)) throw new Error(`INFERNO_LLAMA_SERVER=${named} is not an executable file`);
    return { path: named, from: "INFERNO_LLAMA_SERVER" };
  }
  const cached = cachedLlamaServerPath(llamaCppTag(opts.repoRoot), env);
  return usable(cached) ? { path: cached, from: "cache" } : undefined;
}

/** Runs scripts/build-llama-server.sh (its progress on this process's stderr) and returns the path it prints last. */
export function buildLlamaServer(repoRoot: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const script = path.join(repoRoot, "scripts/build-llama-server.sh");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script], { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
    child.on("error", reject);
    child.on("exit", (code) => {
      const last = out.trim().split("\n").pop() ?? "";
      if (code === 0 && last !== "") resolve(last);
      else reject(new Error(`${script} failed (exit ${code}); see its messages above`));
    });
  });
}

/** The llama-server to run, built first (10–20 minutes on 2 cores) when neither lookup finds one. */
export async function ensureLlamaServer(opts: FindOptions & { repoRoot: string }): Promise<Found> {
  const found = findLlamaServer(opts);
  if (found) return found;
  process.stderr.write("llama-server is not built yet: building it once from node-llama-cpp's llama.cpp source\n");
  return { path: await buildLlamaServer(opts.repoRoot, opts.env ?? process.env), from: "cache" };
}

/** `llama-server --version`, first line ("version: …"), for the report. */
export function llamaServerVersion(bin: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(bin, ["--version"], { env, encoding: "utf8", timeout: 10_000 });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return text.split("\n").find((l) => l.startsWith("version:"))?.slice("version:".length).trim() ?? "unknown";
}
