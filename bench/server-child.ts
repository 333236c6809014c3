// A bench server's process (forked by inferno-server.ts): starts the server its argument names, sends back
// its URL, then answers the parent's requests: its RSS and CPU time, or streams run from here against
// itself (the "server" client location). Closes when the parent disconnects.
import { readFileSync } from "node:fs";
import { closedLoop } from "./closed-loop.js";
import { readCpuMs, readVmRss } from "./llama-server.js";
import { startHttpFloor } from "./http-floor.js";
import { startInferno, type ChildRequest, type ChildSpec } from "./inferno-server.js";
import { streamAgent, streamConcurrently, streamInference } from "./sse-client.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as ChildSpec;
const server = spec.kind === "inferno" ? await startInferno(spec.opts) : { ...(await startHttpFloor()), modelId: "" };
const agent = streamAgent(64);

/** This process's live child processes (Linux: /proc/PID/task/PID/children). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function answer(msg: ChildRequest): Promise<unknown> {
  switch (msg.op) {
    case "stats": {
      // Child processes included: on its llama-server engine, Inferno's models live in those.
      const cpu = process.cpuUsage();
      const kids = childPids(process.pid);
      return {
        rss: process.memoryUsage().rss + kids.reduce((sum, pid) => sum + readVmRss(pid), 0),
        cpuUs: cpu.user + cpu.system + kids.reduce((sum, pid) => sum + readCpuMs(pid) * 1000, 0),
      };
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
