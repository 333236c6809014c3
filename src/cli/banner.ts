// The start-up banner: where to point a browser, a client and the model files, and whether auth is on.
import type { Config } from "../config/config.js";

/** What the banner reports, gathered by `inferno serve` once every listener is up. */
export interface BannerFacts {
  /** The HTTP address as bound (host may be 0.0.0.0 or ::). */
  http: { host: string; port: number; tls: boolean; local: boolean };
  grpcPort?: number | undefined;
  ipcSocket?: string | undefined;
  modelsDir: string;
  models: readonly string[];
  /** The models listed are the shipped demo models (the models dir holds none of its own). */
  demo: boolean;
  auth: boolean;
  /** llama.cpp's backend ("cpu", "cuda", "vulkan", "metal"), or why it failed to start. */
  llamaBackend: string;
  onnxProvider: Config["onnxProvider"];
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

/** A URL a person on this machine can open: a wildcard bind is reachable at localhost. */
export function browsableUrl(http: BannerFacts["http"]): string {
  const host = WILDCARD.has(http.host) ? "localhost" : http.host.includes(":") ? `[${http.host}]` : http.host;
  return `${http.tls ? "https" : "http"}://${host}:${http.port}`;
}

/** The banner as text lines (for the pretty log) and as fields (for JSON logs). */
export function startupBanner(f: BannerFacts): { text: string; fields: Record<string, unknown> } {
  const url = browsableUrl(f.http);
  const shown = f.models.slice(0, 6).join(", ") + (f.models.length > 6 ? `, +${f.models.length - 6} more` : "");
  const modelLine = f.models.length === 0
    ? `none yet: put .gguf or .onnx files in ${f.modelsDir} or run 'inferno pull'`
    : f.demo
      ? `${f.models.length} demo models (${shown}); put your own .gguf or .onnx files in ${f.modelsDir}`
      : `${f.models.length} (${shown}) from ${f.modelsDir}`;
  const authLine = f.auth
    ? "on; first admin key: inferno security api-key create --user admin --name first --role admin"
    : f.http.local
      ? "off (listening on this machine only; --auth turns it on)"
      : "off (--insecure: anyone who can reach this address may use it; --auth turns it on)";
  const lines = [
    "Inferno is ready",
    `  Console   ${url}/`,
    `  API docs  ${url}/docs  (OpenAPI: ${url}/openapi.json)`,
    ...(f.grpcPort !== undefined ? [`  gRPC      ${f.http.host}:${f.grpcPort}`] : []),
    ...(f.ipcSocket ? [`  IPC       ${f.ipcSocket}`] : []),
    `  Models    ${modelLine}`,
    `  Auth      ${authLine}`,
    `  Backend   llama.cpp: ${f.llamaBackend}; onnxruntime: ${f.onnxProvider}`,
  ];
  const fields = {
    console: `${url}/`, docs: `${url}/docs`, openapi: `${url}/openapi.json`, grpc_port: f.grpcPort, ipc_socket: f.ipcSocket,
    models_dir: f.modelsDir, models: f.models.length, demo_models: f.demo, auth: f.auth, llama_backend: f.llamaBackend, onnx_provider: f.onnxProvider,
  };
  return { text: lines.join("\n"), fields };
}
