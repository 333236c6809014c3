// A bench server's process (forked by inferno-server.ts): starts the server its argument names, sends back
// its URL, then answers the parent's requests: its RSS and CPU time, or streams run from here against
// itself (the "server" client location). Closes when the parent disconnects.
import { closedLoop } from "./closed-loop.js";
import { startHttpFloor } from "./http-floor.js";
import { startInferno, type ChildRequest, type ChildSpec } from "./inferno-server.js";
import { streamAgent, streamConcurrently, streamInference } from "./sse-client.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as ChildSpec;
const server = spec.kind === "inferno" ? await startInferno(spec.opts) : { ...(await startHttpFloor()), modelId: "" };
const agent = streamAgent(64);

async function answer(msg: ChildRequest): Promise<unknown> {
  switch (msg.op) {
    case "stats": {
      const cpu = process.cpuUsage();
      return { rss: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system };
    }
    case "stream":
      return streamConcurrently(agent, server.url, msg.req, msg.streams);
    case "loop":
      return closedLoop(msg.clients, msg.windowMs, (_client, signal, onToken) => streamInference(agent, server.url, msg.req, { signal, onToken }));
  }
}

process.on("message", (msg: ChildRequest & { id: number }) => {
  answer(msg).then(
    (result) => process.send?.({ id: msg.id, result }),
    (err: unknown) => process.send?.({ id: msg.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on("disconnect", () => {
  agent.destroy();
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.send?.({ url: server.url, modelId: server.modelId });
