// The IPC transport's floor: a bare Unix-socket server that cuts the stream into frames, decodes each request's
// MessagePack (as any server must, to learn its id) and answers a canned mnist-sized result under that id, with
// no model, no validation and no Inferno.
import { once } from "node:events";
import { unlink } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { decodeFrame, FrameReader } from "../src/transports/ipc/frames.js";
import { framed } from "./ipc-bench-client.js";

/** An infer result of ten float32 logits, its id slot rewritten per answer. */
const ANSWER = framed({ result: { model: "floor", outputs: { Plus214_Output_0: { datatype: "FP32", shape: [1, 10], data: new Uint8Array(40) } } } });

export async function startIpcFloor(socketPath: string): Promise<{ close(): Promise<void> }> {
  await unlink(socketPath).catch(() => {});
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const reader = new FrameReader(64 * 1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        const { id } = decodeFrame(frame) as { id: number };
        const answer = Buffer.from(ANSWER.frame);
        answer.writeUInt32BE(id, ANSWER.slot);
        socket.write(answer);
      }
    });
    socket.on("error", () => {});
  });
  server.listen(socketPath);
  await once(server, "listening");
  return {
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      await unlink(socketPath).catch(() => {});
    },
  };
}
