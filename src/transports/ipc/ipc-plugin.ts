// The IPC listener: a Unix domain socket speaking the framed MessagePack protocol of docs/ipc.md, on the
// app's registry, auth, limits, metrics and drain. Off unless `ipcSocket` is set; started by `app.ipc.listen()`.
import { chmod, lstat, unlink } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { scopeContext, type TransportOptions } from "../call-scope.js";
import { IpcConnection, type ConnectionSettings } from "./ipc-connection.js";

declare module "fastify" {
  interface FastifyInstance {
    ipc: {
      /** Listens on the socket path (replacing a stale socket file); rejects when a live server holds it. */
      listen(): Promise<string>;
    };
  }
}

export interface IpcPluginOptions extends TransportOptions {
  socketPath: string;
  /** File mode of the socket (0o600: only this user may connect). */
  mode: number;
  settings: ConnectionSettings;
}

/** How long a connection gets at shutdown to take its last frames before it is cut. */
const CLOSE_WAIT_MS = 1000;

/** Whether something answers on the socket path: a live server, not a file left by a crashed one. */
function live(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

/** Clears the way for listening: refuses a live server or a path that is not a socket, removes a stale socket. */
async function claim(socketPath: string): Promise<void> {
  const stat = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await live(socketPath)) throw new Error(`another server is listening on ${socketPath}`);
  await unlink(socketPath);
}

async function ipcPlugin(app: FastifyInstance, opts: IpcPluginOptions): Promise<void> {
  const connections = new Set<IpcConnection>();
  let server: Server | undefined;
  const ctx = {
    ...scopeContext(app, opts),
    registry: opts.registry,
    limits: opts.limits,
    settings: opts.settings,
  };

  app.decorate("ipc", {
    listen: async () => {
      await claim(opts.socketPath);
      const s = createServer((socket) => {
        const connection = new IpcConnection(socket, ctx);
        connections.add(connection);
        socket.once("close", () => connections.delete(connection));
      });
      // The socket file is created by listen(): a restrictive umask meanwhile, so it is never open to others.
      const umask = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.listen(opts.socketPath, () => {
            s.off("error", reject);
            resolve();
          });
        });
      } finally {
        process.umask(umask);
      }
      await chmod(opts.socketPath, opts.mode);
      server = s;
      app.log.info({ path: opts.socketPath, mode: `0${opts.mode.toString(8)}` }, `IPC listening at ${opts.socketPath}`);
      return opts.socketPath;
    },
  });

  // During a drain the socket takes no new connections; open ones get SERVICE_UNAVAILABLE for new requests
  // while theirs finish (they count as open requests for the grace).
  app.drainSignal.addEventListener("abort", () => server?.close(), { once: true });
  // Closing the listener removes the socket file (libuv unlinks it), so a server started on the path after
  // this one is never touched by this one's shutdown.
  app.addHook("onClose", async () => {
    if (!server) return;
    for (const c of connections) c.close(CLOSE_WAIT_MS);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
  });
}

/** The IPC transport as a plugin; needs the metrics, traces, rate-limit and shutdown plugins registered first. */
export const ipcTransport = fp(ipcPlugin, { name: "inferno-ipc", fastify: "5.x", dependencies: ["inferno-metrics", "inferno-traces", "inferno-rate-limit", "inferno-shutdown"] });
