// `inferno mcp`: MCP on stdio for desktop agents (their config files start a command). With --url it
// bridges stdio to a running server's /mcp, message by message, with --api-key (or INFERNO_API_KEY) as
// the bearer credential; without, it builds the server from the usual config and serves the same tools in
// this process, with no listener. stdout carries the protocol, so everything else goes to stderr.
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { clientApiKey, loadConfig } from "../config/config.js";
import { InfernoError } from "../errors/catalogue.js";
import { buildServer } from "../server.js";

export interface McpCommandOptions {
  url: string | undefined;
  apiKey: string | undefined;
}

/** The server's /mcp for a --url given as the server's address or as the endpoint itself. */
export function mcpEndpoint(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InfernoError("INVALID_REQUEST", `--url ${JSON.stringify(url)} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new InfernoError("INVALID_REQUEST", `--url must be http or https, not ${parsed.protocol}`);
  if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = "/mcp";
  return parsed;
}

/** Runs until the client closes stdin (or a signal). */
export async function mcp(flags: Record<string, unknown>, opts: McpCommandOptions): Promise<void> {
  const token = opts.apiKey ?? clientApiKey();
  if (opts.url !== undefined) return bridge(mcpEndpoint(opts.url), token);
  const config = loadConfig({ flags });
  if (!config.mcpEnabled) throw new InfernoError("INVALID_REQUEST", "MCP is turned off in this configuration (mcpEnabled false)");
  const app = await buildServer(config, { logToStderr: true });
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, "error while closing");
        process.exit(1);
      },
    );
  };
  try {
    await app.ready();
    await app.mcp.connect(new StdioServerTransport(), { token });
  } catch (err) {
    await app.close();
    throw err;
  }
  process.stdin.once("end", stop);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  app.log.info({ models: app.registry.list().map((m) => m.id) }, "MCP on stdio, in process");
}

const isRequest = (m: JSONRPCMessage): m is JSONRPCMessage & { id: string | number; method: string } => "method" in m && "id" in m;

/** Passes every message both ways; a message the server cannot take is answered with a JSON-RPC error. */
async function bridge(endpoint: URL, token: string | undefined): Promise<void> {
  const stdio = new StdioServerTransport();
  const http = new StreamableHTTPClientTransport(endpoint, token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : {});
  let closing = false;
  const stop = (code: number) => {
    if (closing) return;
    closing = true;
    // Ends the server's session now rather than at its idle timeout.
    void http.terminateSession().catch(() => {}).finally(async () => {
      await Promise.allSettled([http.close(), stdio.close()]);
      process.exit(code);
    });
  };
  // One POST at a time, in order: a message sent before initialize's answer would have no session yet. A
  // POST ends when its answer starts (a stream goes on), so a cancel still overtakes a long call.
  let sending = Promise.resolve();
  stdio.onmessage = (message) => {
    sending = sending.then(() => http.send(message)).catch((err: unknown) => {
      const text = (err as Error).message ?? String(err);
      process.stderr.write(`inferno mcp: ${endpoint.href}: ${text}\n`);
      if (isRequest(message)) void stdio.send({ jsonrpc: "2.0", id: message.id, error: { code: -32000, message: `${endpoint.href}: ${text}` } });
    });
  };
  http.onmessage = (message) => {
    // The version the server agreed to rides on every later request, as the SDK's client does.
    const result = (message as { result?: { protocolVersion?: unknown } }).result;
    if (typeof result?.protocolVersion === "string") http.setProtocolVersion(result.protocolVersion);
    void stdio.send(message);
  };
  http.onerror = (err) => process.stderr.write(`inferno mcp: ${err.message}\n`);
  stdio.onerror = (err) => process.stderr.write(`inferno mcp: stdio: ${err.message}\n`);
  await http.start();
  await stdio.start();
  process.stdin.once("end", () => stop(0));
  process.once("SIGTERM", () => stop(0));
  process.once("SIGINT", () => stop(0));
  process.stderr.write(`inferno mcp: bridging stdio to ${endpoint.href}\n`);
}
