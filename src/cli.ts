#!/usr/bin/env node
import { parseArgs } from "node:util";
import { ConfigError } from "./config/config.js";
import { InfernoError } from "./errors/catalogue.js";
import { PullError } from "./pull/pull-model.js";
import { VERSION } from "./version.js";

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const HELP = `inferno ${VERSION} — one server for GGUF LLMs and ONNX models

Usage:
  inferno serve [options]              start the HTTP server (default 127.0.0.1:8080)
  inferno models list [--json]         list the models the server would serve
  inferno models info FILE [--json]    show a model file's header facts without loading it
  inferno pull URL|hf:OWNER/REPO[@REV]/FILE [--name ID] [--sha256 HEX] [--force] [--json]
                                       download a model into the models dir (resumable)
  inferno security api-key create --user USER --name NAME [--role admin|user] [--expires-in DURATION] [--json]
                                       create an API key; the key is printed once
  inferno security api-key list [--json] | api-key revoke ID
  inferno security user create --username U --password P|- [--role admin|user]
                                       a login user (--password - reads it from stdin)
  inferno security user list [--json] | user set-role USERNAME --role admin|user | user delete USERNAME
  inferno --help | --version

Options (each also from env INFERNO_<KEY> or a JSON --config file; flag > env > file > default):
  --host H             bind address (default 127.0.0.1)          INFERNO_HOST
  --port P             port (default 8080)                        INFERNO_PORT
  --models-dir DIR     model folder (default ./models)            INFERNO_MODELS_DIR
  --data-dir DIR       registrations and state (default ./data)   INFERNO_DATA_DIR
  --model-root DIR     extra folder models may be registered from (repeatable; env: ':'-separated)
  --threads N          llama.cpp threads for one-token batches (default: cores - 1, at least 1)  INFERNO_THREADS
  --batch-threads N    llama.cpp threads for prompts and multi-stream batches (default: cores)  INFERNO_BATCH_THREADS
  --gpu G              auto|cpu|cuda|vulkan|metal (default auto)  INFERNO_GPU
  --gguf-engine E      node-llama-cpp (in-process, default) or llama-server (a child per model)  INFERNO_GGUF_ENGINE
  --llama-server PATH  llama-server binary for that engine (default: npm run build:llama-server's)  INFERNO_LLAMA_SERVER
  --parallel N         parallel sequences per GGUF model (default 4)       INFERNO_PARALLEL
  --context-size N     tokens per sequence (default 2048, capped at the model's trained size)
  --batch-size N       prompt batch size (default 512)
  --gpu-layers N       layers on the GPU: auto|max|N (default auto)
  --max-tokens-limit N largest max_tokens a request may ask for (default 4096)
  --body-limit BYTES   request body cap (default 10485760)
  --keep-alive D       unload a model idle this long (default 5m; -1 never)  INFERNO_KEEP_ALIVE
  --auth               require an API key or JWT on every route but /health  INFERNO_AUTH
  --insecure           allow a non-loopback --host without --auth           INFERNO_INSECURE
  --cors-origins LIST  comma-separated origins allowed by CORS (none by default)
  --metrics-public     serve /metrics without credentials
  --rate-limit         per-key/IP rate limits (default: on when --auth is)
  --request-timeout-ms N  per-request time limit (default 600000)
  --onnx-provider P    cpu|cuda|auto (default cpu)                  INFERNO_ONNX_PROVIDER
  --config FILE        JSON config file with the same keys in camelCase   INFERNO_CONFIG
  --log-level L        fatal|error|warn|info|debug|trace|silent (default info)

Exit codes: 0 success, 1 runtime failure (cannot listen, download failed, bad model file), 2 usage or configuration error.
`;

const serveOptions = {
  host: { type: "string" },
  port: { type: "string" },
  "models-dir": { type: "string" },
  "data-dir": { type: "string" },
  "model-root": { type: "string", multiple: true },
  threads: { type: "string" },
  "batch-threads": { type: "string" },
  gpu: { type: "string" },
  "gguf-engine": { type: "string" },
  "llama-server": { type: "string" },
  parallel: { type: "string" },
  "context-size": { type: "string" },
  "batch-size": { type: "string" },
  "gpu-layers": { type: "string" },
  "max-tokens-limit": { type: "string" },
  "body-limit": { type: "string" },
  "keep-alive": { type: "string" },
  auth: { type: "boolean" },
  insecure: { type: "boolean" },
  "cors-origins": { type: "string" },
  "metrics-public": { type: "boolean" },
  "rate-limit": { type: "boolean" },
  "request-timeout-ms": { type: "string" },
  "onnx-provider": { type: "string" },
  "onnx-max-batch-size": { type: "string" },
  "onnx-max-queue-delay-us": { type: "string" },
  config: { type: "string" },
  "log-level": { type: "string" },
  json: { type: "boolean" },
  name: { type: "string" },
  sha256: { type: "string" },
  force: { type: "boolean" },
  user: { type: "string" },
  role: { type: "string" },
  "expires-in": { type: "string" },
  username: { type: "string" },
  password: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const COMMAND_ONLY = new Set(["json", "name", "sha256", "force", "user", "role", "expires-in", "username", "password", "help", "version"]);

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: serveOptions, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    console.log(VERSION);
    return EXIT.ok;
  }
  const [command, sub, arg] = positionals;
  if (values.help || command === "help") {
    console.log(HELP);
    return EXIT.ok;
  }
  if (command === undefined) {
    console.error(HELP);
    return EXIT.usage;
  }
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (COMMAND_ONLY.has(k) || v === undefined) continue;
    flags[k === "model-root" ? "modelRoots" : camel(k)] = v;
  }
  switch (command) {
    case "serve": {
      const { serve } = await import("./cli/serve.js");
      await serve(flags);
      return -1; // keep running
    }
    case "models": {
      const { modelsList, modelsInfo } = await import("./cli/models-command.js");
      if (sub === "list") await modelsList(flags, values.json === true);
      else if (sub === "info" && arg) await modelsInfo(arg, values.json === true);
      else throw new UsageError("usage: inferno models list | inferno models info FILE");
      return EXIT.ok;
    }
    case "pull": {
      if (!sub) throw new UsageError("usage: inferno pull URL|hf:OWNER/REPO/FILE [--name ID] [--sha256 HEX]");
      const { pull } = await import("./cli/pull-command.js");
      await pull(sub, flags, {
        ...(values.name ? { name: values.name } : {}),
        ...(values.sha256 ? { sha256: values.sha256 } : {}),
        force: values.force === true,
        json: values.json === true,
      });
      return EXIT.ok;
    }
    case "security": {
      const { security, SecurityUsageError } = await import("./cli/security-command.js");
      const { json, user, name, role, "expires-in": expiresIn, username, password } = values;
      try {
        await security(positionals.slice(1), { json, user, name, role, expiresIn, username, password }, flags);
      } catch (err) {
        throw err instanceof SecurityUsageError ? new UsageError(err.message) : err;
      }
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command '${command}' (see inferno --help)`);
  }
}

function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError) return EXIT.usage;
  if (err instanceof PullError && (err.code === "INVALID_NAME" || err.code === "INVALID_SOURCE")) return EXIT.usage;
  return EXIT.failure;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const label = err instanceof InfernoError || err instanceof PullError ? `${err.code}: ` : "";
    console.error(`inferno: ${label}${(err as Error).message ?? String(err)}`);
    process.exitCode = exitCodeFor(err);
  },
);
