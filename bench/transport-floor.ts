// The transports' floor: a bare grpc-js server whose ModelInfer, a bare node:http server whose POST and a bare
// Unix-socket server (ipc-floor.ts) whose frames answer a canned mnist-sized response at once, with no model, no validation and no Inferno. What the transport and its
// client cost on this machine alone, so that a side's time over raw splits into the transport's and Inferno's.
import http from "node:http";
import { once } from "node:events";
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { ModelInferResponse } from "../src/transports/grpc/generated/inference/ModelInferResponse.js";
import { inferenceProto } from "./grpc-bench-client.js";
import { startIpcFloor } from "./ipc-floor.js";

/** An mnist answer: ten float32 logits. */
const GRPC_ANSWER: ModelInferResponse = {
  model_name: "floor", model_version: "1",
  outputs: [{ name: "Plus214_Output_0", datatype: "FP32", shape: [1, 10] }],
  raw_output_contents: [Buffer.alloc(40)],
};
const HTTP_ANSWER = Buffer.from(JSON.stringify({ model_name: "floor", model_version: "1", outputs: [{ name: "Plus214_Output_0", datatype: "FP32", shape: [1, 10], data: new Array(10).fill(0.5) }] }));

export async function startTransportFloor(ipcSocket: string): Promise<{ url: string; grpcAddress: string; ipcSocket: string; close(): Promise<void> }> {
  const grpc = new Server();
  // Every other method answers UNIMPLEMENTED (grpc-js's default for a missing handler).
  grpc.addService(inferenceProto().inference.GRPCInferenceService.service, {
    ModelInfer: (_call: ServerUnaryCall<unknown, ModelInferResponse>, callback: sendUnaryData<ModelInferResponse>) => callback(null, GRPC_ANSWER),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpc.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.on("data", () => {});
    req.on("end", () => res.writeHead(200, { "content-type": "application/json", "content-length": HTTP_ANSWER.length }).end(HTTP_ANSWER));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const ipc = await startIpcFloor(ipcSocket);
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    ipcSocket,
    close: async () => {
      grpc.forceShutdown();
      await ipc.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
