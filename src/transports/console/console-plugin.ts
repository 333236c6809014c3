import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { InfernoError } from "../../errors/catalogue.js";
import { sendError } from "../../errors/error-handler.js";

/**
 * The console's files: `console/` at the repository root, found from this file's compiled place
 * (dist/src/transports/console/), so a clone and the Docker image (/app/console) both work.
 */
export const CONSOLE_DIR = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../console");

/** Where the console's assets are served; `GET /` serves its page. Both are public (auth-plugin.ts). */
export const CONSOLE_PREFIX = "/console/";

// The page loads only its own files and talks only to this server: no inline script, nothing remote.
const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join("; ");

export interface ConsolePluginOptions {
  /** The folder holding index.html and its assets (CONSOLE_DIR by default). */
  dir?: string;
}

/** The web console: `GET /` (the page) and `GET /console/*` (its scripts and styles), read-only files. */
export async function consolePlugin(app: FastifyInstance, opts: ConsolePluginOptions): Promise<void> {
  const root = opts.dir ?? CONSOLE_DIR;
  if (!existsSync(path.join(root, "index.html"))) {
    app.log.warn({ dir: root }, "web console files not found; GET / is not served");
    return;
  }
  // A file piped to the response adds Node's stream listeners (about 7 'close' ones) to the 4 the app's
  // hooks hold (timeout, drain, metrics, traces): past Node's default of 10 it warns of a leak that is not one.
  app.addHook("onRequest", async (_request, reply) => {
    reply.raw.setMaxListeners(20);
  });
  app.addHook("onSend", async (_request, reply) => {
    reply.header("content-security-policy", CSP);
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
    // Small files that change with the server: revalidate (ETag) rather than cache stale code.
    reply.header("cache-control", "no-cache");
  });
  // What `send` refuses (a dot file, a path leaving the folder, a directory) is simply not a console file.
  app.setErrorHandler((err: { statusCode?: number }, request, reply) =>
    sendError(request, reply, err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? new InfernoError("NOT_FOUND", "no such console file") : err),
  );
  // Encapsulated (no fastify-plugin), so reply.sendFile stays inside this scope. `send` refuses any
  // path that leaves `root` (.., encoded or not); dot files are refused, directories not listed.
  await app.register(fastifyStatic, {
    root, prefix: CONSOLE_PREFIX, index: false, redirect: false, list: false, dotfiles: "deny", cacheControl: false,
  });
  app.get("/", async (_request, reply) => reply.sendFile("index.html"));
}
