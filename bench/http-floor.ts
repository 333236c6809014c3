import Fastify from "fastify";

/**
 * A bare Fastify app whose /inference/stream answers one fixed token event and a done event, with no
 * model, no validation and no plugins: what HTTP + SSE + the client over loopback cost on this machine, so
 * that Inferno's time to first token can be split into runtime, transport and Inferno's own share.
 */
export async function startHttpFloor(): Promise<{ url: string; close: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  const token = `data: ${JSON.stringify({ token: " there", index: 0 })}\n\n`;
  const done = `data: ${JSON.stringify({ done: true, finish_reason: "length", usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } })}\n\n`;
  app.post("/inference/stream", (_request, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    reply.raw.write(token);
    reply.raw.end(done);
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}
