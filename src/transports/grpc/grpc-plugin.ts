// The gRPC listener: the GRPCInferenceService (proto/inference.proto) and server reflection, on the
// app's registry, auth, limits, metrics and drain. Started by `app.grpc.listen` once HTTP listens.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Server, ServerCredentials } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { scopeContext, type TransportOptions } from "../call-scope.js";
import type { ProtoGrpcType } from "./generated/inference.js";
import { inferenceService } from "./inference-service.js";
import { tolerantDeserializers } from "./malformed.js";
import { ModelStats } from "./model-stats.js";

declare module "fastify" {
  interface FastifyInstance {
    grpc: {
      /** Binds the gRPC listener; resolves to its port. Rejects (port in use, bad certificate) with the reason. */
      listen(host: string, port: number): Promise<number>;
      /** The bound port, once listening. */
      readonly port: number | undefined;
    };
  }
}

/** PEM files for TLS; `clientCa` requires client certificates it signed (mTLS). */
export interface TlsFiles {
  cert: string;
  key: string;
  clientCa?: string | undefined;
}

export interface GrpcPluginOptions extends TransportOptions {
  /** Largest message a client may send (the HTTP body limit); larger ones get RESOURCE_EXHAUSTED from gRPC itself. */
  maxMessageBytes: number;
  tls?: TlsFiles | undefined;
}

/** The proto, from the package root (dist/src/transports/grpc → ../../../../proto; src/... → ../../../proto). */
function protoFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, "../../../../proto/inference.proto"), path.resolve(here, "../../../proto/inference.proto")];
  return candidates.find((f) => existsSync(f)) ?? candidates[0]!;
}

/** Loader options: the ones the generated types were made with (package.json "gen:grpc"). */
export const PROTO_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

export function loadInferenceProto() {
  return loadSync(protoFile(), PROTO_OPTIONS);
}

/** Server credentials from PEM files: insecure without them. */
export function serverCredentials(tls: TlsFiles | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  const ca = tls.clientCa ? readFileSync(tls.clientCa) : null;
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], tls.clientCa !== undefined);
}

/**
 * HTTP/2 receive windows. Node's default (64 KiB, per stream and per connection) makes a client sending a
 * 600 KB tensor wait for about ten window updates; grpc-js has no server option for it (its
 * `grpc-node.flow_control_window` is the client's), so the plugin sets Node's settings on the servers
 * grpc-js creates. Measured on mobilenet-int8 requests (bench/transports.ts): a bare grpc-js server went
 * from 129-175 to 310-326 requests/s.
 */
const STREAM_WINDOW_BYTES = 8 << 20;
const CONNECTION_WINDOW_BYTES = 32 << 20;

interface Http2Internals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<{ on(event: "session", listener: (session: { setLocalWindowSize?(size: number): void }) => void): void }, unknown>;
}

/** Larger receive windows on grpc-js's HTTP/2 servers; a no-op if grpc-js changes its internals. */
function widenWindows(server: Server, stage: "before-bind" | "after-bind", patched: Set<unknown>): void {
  const internals = server as unknown as Http2Internals;
  if (stage === "before-bind") {
    if (internals.commonServerOptions) internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: STREAM_WINDOW_BYTES };
    return;
  }
  for (const http2Server of internals.http2Servers?.keys() ?? []) {
    if (patched.has(http2Server)) continue;
    patched.add(http2Server);
    http2Server.on("session", (session) => session.setLocalWindowSize?.(CONNECTION_WINDOW_BYTES));
  }
}

/** How many requests one ModelStreamInfer call may have running before the server stops reading it. */
const MAX_STREAM_IN_FLIGHT = 64;
/** How long closing waits for calls to finish before cutting them. */
const CLOSE_WAIT_MS = 2000;

async function grpcPlugin(app: FastifyInstance, opts: GrpcPluginOptions): Promise<void> {
  const definition = loadInferenceProto();
  const proto = loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  const stats = new ModelStats(opts.registry);
  const server = new Server({
    "grpc.max_receive_message_length": opts.maxMessageBytes,
    "grpc.max_send_message_length": -1,
  });
  server.addService(
    tolerantDeserializers(proto.inference.GRPCInferenceService.service),
    inferenceService({
      ...scopeContext(app, opts),
      registry: opts.registry,
      limits: opts.limits,
      stats,
      maxStreamInFlight: MAX_STREAM_IN_FLIGHT,
    }),
  );
  new ReflectionService(definition).addToServer(server);
  let port: number | undefined;
  const patched = new Set<unknown>();

  app.decorate("grpc", {
    listen: (host: string, wanted: number) =>
      new Promise<number>((resolve, reject) => {
        const address = host.includes(":") ? `[${host}]:${wanted}` : `${host}:${wanted}`;
        let credentials: ServerCredentials;
        try {
          credentials = serverCredentials(opts.tls);
        } catch (err) {
          return reject(err);
        }
        widenWindows(server, "before-bind", patched);
        server.bindAsync(address, credentials, (err, bound) => {
          if (err) return reject(err);
          widenWindows(server, "after-bind", patched);
          port = bound;
          app.log.info({ port: bound, tls: opts.tls !== undefined, mtls: opts.tls?.clientCa !== undefined }, `gRPC listening at ${opts.tls ? "grpcs" : "grpc"}://${host.includes(":") ? `[${host}]` : host}:${bound}`);
          resolve(bound);
        });
      }),
    get port() {
      return port;
    },
  });

  app.addHook("onClose", async () => {
    stats.close();
    if (port === undefined) return;
    // Calls still open get the drain's grace before this (they count as open requests): cut what is left.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, CLOSE_WAIT_MS);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  });
}

/** The gRPC transport as a plugin; needs the metrics, traces, rate-limit and shutdown plugins registered first. */
export const grpcTransport = fp(grpcPlugin, { name: "inferno-grpc", fastify: "5.x", dependencies: ["inferno-metrics", "inferno-traces", "inferno-rate-limit", "inferno-shutdown"] });
