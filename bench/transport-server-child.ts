// The transport bench's server process (forked by transport-server.ts): starts Inferno (buildServer, then
// app.listen and app.grpc.listen on loopback, ephemeral ports, and app.ipc.listen on a Unix socket in the temp
// dir) or the bare floor servers, sends back its addresses, answers samples of its CPU time, event-loop use and
// session runs, and closes when the parent disconnects.
import os from "node:os";
import path from "node:path";
import { startInferno } from "./inferno-server.js";
import { startOnnxInferno } from "./onnx-server.js";
import { startTransportFloor } from "./transport-floor.js";
import type { ServerSample, TransportServer, TransportServerSpec } from "./transport-server.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as TransportServerSpec;
const counters = new Map<string, () => number>();
const ipcSocket = path.join(os.tmpdir(), `inferno-bench-${process.pid}.sock`);

async function start(): Promise<Omit<TransportServer, "sample"> & { close(): Promise<void> }> {
  if (spec.kind === "floor") return { ...(await startTransportFloor(ipcSocket)), modelId: "", options: {} };
  const server = spec.kind === "onnx" ? await startOnnxInferno({ models: spec.models, threads: spec.threads, ipcSocket }) : await startInferno({ ...spec.opts, ipcSocket });
  const options: Record<string, Record<string, unknown>> = {};
  if (spec.kind === "onnx" && "load" in server) {
    for (const id of Object.keys(spec.models)) {
      // `{}`: the server's defaults (dynamic batching: onnxMaxBatchSize 16, no queue delay).
      options[id] = await server.load(id, {});
      counters.set(id, await server.sessionRunCounter(id));
    }
  }
  const grpcPort = await server.app.grpc.listen("127.0.0.1", 0);
  await server.app.ipc.listen();
  return { url: server.url, grpcAddress: `127.0.0.1:${grpcPort}`, ipcSocket, modelId: "modelId" in server ? server.modelId : "", options, close: () => server.close() };
}

function sample(): ServerSample {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  return {
    cpuUs: cpu.user + cpu.system,
    eluIdle: elu.idle,
    eluActive: elu.active,
    sessionRuns: Object.fromEntries([...counters].map(([id, runs]) => [id, runs()])),
  };
}

const server = await start();
process.on("message", (msg: { id: number; op: "sample" }) => process.send?.({ id: msg.id, result: sample() }));
process.on("disconnect", () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
const { close: _close, ...ready } = server;
process.send?.(ready);
