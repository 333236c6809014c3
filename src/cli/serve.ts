import { isIP } from "node:net";
import { ConfigError, loadConfig } from "../config/config.js";
import { buildServer, tlsFiles } from "../server.js";
import { startupBanner } from "./banner.js";

/** How long after the grace a drain that hangs (a stuck native call, say) is cut short with exit code 1. */
const HARD_EXIT_AFTER_GRACE_MS = 15_000;

/** Starts the server and drains it gracefully on SIGTERM/SIGINT (src/lifecycle/shutdown.ts). Resolves once listening. */
export async function serve(flags: Record<string, unknown>): Promise<void> {
  const config = loadConfig({ flags });
  if (!config.auth && !config.insecure && !isLoopback(config.host)) {
    throw new ConfigError(
      `refusing to listen on ${config.host} without authentication: turn auth on (--auth, INFERNO_AUTH=true) ` +
        "and create a key with 'inferno security api-key create', or pass --insecure if something else protects this address",
    );
  }
  const app = await buildServer(config);
  let draining = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (draining) {
      // A second signal (Ctrl-C twice) skips what is left of the grace; the cleanup still runs.
      app.log.warn({ signal }, "second signal: ending the open requests now");
      void app.drain(0);
      return;
    }
    draining = true;
    app.log.info({ signal, grace_ms: config.shutdownGraceMs }, "shutting down");
    const force = setTimeout(() => {
      app.log.error("shutdown did not complete; exiting");
      process.exit(1);
    }, config.shutdownGraceMs + HARD_EXIT_AFTER_GRACE_MS);
    force.unref();
    app.drain(config.shutdownGraceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    app.log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`);
    await app.close();
    throw Object.assign(new Error(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`), { exitCode: 1 });
  }
  if (config.grpcEnabled) {
    try {
      await app.grpc.listen(config.host, config.grpcPort);
    } catch (err) {
      app.log.fatal({ err }, `cannot start gRPC on ${config.host}:${config.grpcPort}`);
      await app.close();
      throw Object.assign(new Error(`cannot start gRPC on ${config.host}:${config.grpcPort}: ${(err as Error).message} (--grpc-port, or --grpc-enabled false)`), { exitCode: 1 });
    }
  }
  if (config.ipcSocket) {
    try {
      await app.ipc.listen();
    } catch (err) {
      app.log.fatal({ err }, `cannot listen on the IPC socket ${config.ipcSocket}`);
      await app.close();
      throw Object.assign(new Error(`cannot listen on the IPC socket ${config.ipcSocket}: ${(err as Error).message}`), { exitCode: 1 });
    }
  }
  // Warm the llama.cpp backend now so the first request does not pay for it (and the banner can name it).
  const llamaBackend = await app.llamaRuntime.getLlama().then(
    (llama) => (llama.gpu === false ? "cpu" : llama.gpu),
    (err: unknown) => {
      app.log.error({ err }, "llama.cpp backend failed to start");
      return `failed to start (${(err as Error).message})`;
    },
  );
  const address = app.server.address();
  const models = app.registry.list().filter((m) => !m.missing);
  const summary = app.registry.summary();
  const banner = startupBanner({
    http: { host: config.host, port: typeof address === "object" && address ? address.port : config.port, tls: tlsFiles(config) !== undefined, local: isLoopback(config.host) },
    grpcPort: config.grpcEnabled ? app.grpc.port : undefined,
    ipcSocket: config.ipcSocket,
    modelsDir: config.modelsDir,
    models: models.map((m) => m.id),
    demo: summary.demo,
    auth: config.auth,
    llamaBackend,
    onnxProvider: config.onnxProvider,
  });
  app.log.info({ startup: banner.fields }, banner.text);
}

/** Loopback addresses only: 127.0.0.0/8, ::1 and "localhost". 0.0.0.0 and :: listen everywhere. */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h.startsWith("::ffff:127.");
}
