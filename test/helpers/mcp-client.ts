import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/** An MCP client of the SDK connected to `${url}/mcp` over Streamable HTTP, with a bearer key when given. */
export async function mcpHttpClient(url: string, key?: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), key ? { requestInit: { headers: { authorization: `Bearer ${key}` } } } : {});
  const client = new Client({ name: "inferno-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

/** A tool result's structured content (the JSON the tool's route would answer). */
export const structured = (r: unknown) => (r as { structuredContent: any }).structuredContent;
export const textOf = (r: unknown) => ((r as { content: Array<{ text: string }> }).content[0]!.text);
