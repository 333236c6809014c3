#!/usr/bin/env node
import { parseArgs } from "node:util";
import { ConfigError } from "./config/config.js";
import { configFlagHelp, configFlagOptions, configFromFlags } from "./config/config-flags.js";
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
  inferno mcp [--url URL [--api-key KEY]] [options]
                                       MCP on stdio for agents: bridge to a running server's /mcp, or serve in process
  inferno --help | --version

Options (every configuration key; each also from env INFERNO_<KEY> or a JSON --config file; flag > env > file > default):
${"  --config FILE".padEnd(32)} JSON config file with the same keys in camelCase  INFERNO_CONFIG
${configFlagHelp()}

Exit codes: 0 success, 1 runtime failure (cannot listen, download failed, bad model file), 2 usage or configuration error.
`;

const options = {
  ...configFlagOptions(),
  config: { type: "string" },
  json: { type: "boolean" },
  name: { type: "string" },
  sha256: { type: "string" },
  force: { type: "boolean" },
  user: { type: "string" },
  role: { type: "string" },
  "expires-in": { type: "string" },
  username: { type: "string" },
  password: { type: "string" },
  url: { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;


class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
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
  const flags: Record<string, unknown> = { ...configFromFlags(values), ...(values.config !== undefined ? { config: values.config } : {}) };
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
    case "mcp": {
      const { mcp } = await import("./cli/mcp-command.js");
      await mcp(flags, { url: values.url, apiKey: values["api-key"] });
      return -1; // runs until the client closes stdin
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
