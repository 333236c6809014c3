// Needs ../shared/models (stories260K.gguf, mnist-8.onnx). `inferno mcp` on stdio through the SDK's
// StdioClientTransport: in process (the server built from flags, no listener), and as a bridge to a
// running server's /mcp with an API key (its role filters the tools; a bad key is refused).
import assert from "node:assert/strict";
import { mkdir, symlink } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { childEnv } from "../helpers/cli.js";
import { structured, textOf } from "../helpers/mcp-client.js";
import { cliPath, realModel, sharedModelsDir, tempDir } from "../helpers/paths.js";
import { startTestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const mnist = realModel("mnist-8.onnx");
const skip = stories.skip || mnist.skip;

/**
 * A greedy `generate` on stories with a progress token: it answers, and its tokens came as progress, in
 * order. Only a prefix is certain: the SDK's client drops a progress notification that reaches it in the
 * same stdio read as the answer (the answer removes the handler first). So the generation runs long enough
 * (ignore_eos) for the first notifications to come in reads of their own: stories260K makes 8 tokens in about
 * 3 ms on the native generation loop, which could all arrive with the answer.
 */
async function generateWithProgress(client: Client, maxTokens: number): Promise<void> {
  const progress: string[] = [];
  const r = await client.callTool(
    { name: "generate", arguments: { model: "stories", prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0, ignore_eos: true } },
    undefined,
    { onprogress: (p) => void progress.push(p.message ?? "") },
  );
  assert.equal(r.isError, undefined, textOf(r));
  const text = structured(r).choices[0].text as string;
  assert.ok(progress.length > 0, "progress notifications came");
  assert.ok(text.startsWith(progress.join("")), `${JSON.stringify(progress.join(""))} begins ${JSON.stringify(text)}`);
}

async function stdioClient(args: string[], env: Record<string, string> = {}) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [cliPath, "mcp", ...args], env: childEnv(env) as Record<string, string>, stderr: "pipe" });
  let stderr = "";
  transport.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  const client = new Client({ name: "inferno-stdio-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

test("in process: the tools run on the server built from the flags; logs go to stderr", { skip }, async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const models = path.join(tmp.dir, "models");
  await mkdir(models);
  await symlink(stories.path, path.join(models, "stories.gguf"));
  await symlink(mnist.path, path.join(models, "mnist.onnx"));
  const { client, stderr } = await stdioClient([
    "--models-dir", models, "--data-dir", path.join(tmp.dir, "data"), "--model-root", sharedModelsDir()!, "--demo-models", "false",
    "--threads", "1", "--context-size", "256", "--log-level", "info",
  ]);
  t.after(() => client.close());
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes("generate") && names.includes("load_model"), "the local operator is an admin");
  await generateWithProgress(client, 96);
  const image = [[Array.from({ length: 28 }, () => new Array(28).fill(0))]];
  const tensor = await client.callTool({ name: "infer_tensor", arguments: { model: "mnist", inputs: { Input3: image } } });
  assert.deepEqual(structured(tensor).outputs.Plus214_Output_0.shape, [1, 10]);
  const bad = await client.callTool({ name: "generate", arguments: { model: "mnist", prompt: "x" } });
  assert.equal(structured(bad).error.code, "UNSUPPORTED_OPERATION");
  const read = await client.readResource({ uri: "inferno://models/stories" });
  assert.equal(JSON.parse((read.contents[0] as { text: string }).text).id, "stories");
  assert.match(stderr(), /MCP on stdio, in process/);
});

test("bridge: stdio to a running server's /mcp with an API key; the key's role filters the tools", { skip }, async (t) => {
  const srv = await startTestServer({ models: { stories: stories.path }, config: { auth: true, jwtSecret: "s".repeat(40) } });
  t.after(() => srv.cleanup());
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const userKey = new ApiKeyStore(openDatabase(srv.dataDir)).create({ user: "alice", name: "alice", role: "user" }).key;

  const { client, stderr } = await stdioClient(["--url", srv.url], { INFERNO_API_KEY: userKey });
  t.after(() => client.close()); // also when an assertion fails: the bridge process must not outlive the test
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes("generate"));
  assert.ok(!names.includes("load_model"), "a user key gets no admin tool");
  await generateWithProgress(client, 96);
  assert.equal(srv.app.mcp.sessions(), 1);
  await client.close();
  for (let i = 0; i < 100 && srv.app.mcp.sessions() > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(srv.app.mcp.sessions(), 0, "the bridge ends its session when its client leaves");
  assert.match(stderr(), /bridging stdio to/);

  // A wrong key: the initialize is answered with the server's refusal.
  const wrong = await stdioClient(["--url", srv.url, "--api-key", "inf_wrong"]).catch((e: unknown) => e as Error);
  assert.ok(wrong instanceof Error);
  assert.match(wrong.message, /AUTHENTICATION_FAILED|401/);
});
