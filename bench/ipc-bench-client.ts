// The transport bench's IPC clients: the shipped TypeScript client (src/client), as users get it, and a minimal
// raw-frame client that tells the shipped client's own cost from the protocol's. The raw client sends a request
// frame encoded once, with only its id rewritten, and reads of each answer only its id and whether it is a result.
import { once } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { connect, type InfernoClient } from "../src/client/index.js";
import { decodeFrame, encodeFrame, FrameReader } from "../src/transports/ipc/frames.js";
import type { StreamRequest } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";

export type { InfernoClient };

/** `n` shipped clients, each its own connection, hello and health done, so no timed call opens one. */
export const ipcClients = (socketPath: string, n: number): Promise<InfernoClient[]> =>
  Promise.all(Array.from({ length: n }, () => connect(socketPath)));

/**
 * An id MessagePack writes as a uint32 (0xce and four bytes): a frame encoded with it has a fixed-width slot that
 * any other uint32 id can be written into. The raw client's ids count up from it, so they stay uint32 too.
 */
const MARK_ID = 0x7e000000;
const MARK = Buffer.from([0xce, 0x7e, 0x00, 0x00, 0x00]);

/** `message` as a frame whose id slot can be rewritten: the frame and the slot's offset. */
export function framed(message: Record<string, unknown>): { frame: Buffer; slot: number } {
  const frame = encodeFrame({ id: MARK_ID, ...message });
  const at = frame.indexOf(MARK);
  if (at < 0 || frame.indexOf(MARK, at + 1) >= 0) throw new Error("no unique id slot in the encoded frame");
  return { frame, slot: at + 1 };
}

// An answer begins { id: <uint32>, result | error }: a fixmap, the fixstr "id", 0xce and four bytes, then the next key.
const ID_KEY = Buffer.from([0xa2, 0x69, 0x64, 0xce]);
const RESULT_KEY = Buffer.from([0xa6, ...Buffer.from("result")]);

/** One connection of minimal frames: requests multiplexed by id, answers matched without decoding them. */
export class RawIpcClient {
  private readonly pending = new Map<number, { resolve(frame: Buffer): void; reject(err: Error): void }>();
  private nextId = MARK_ID;
  private closeReason = "the IPC connection closed";

  private constructor(private readonly socket: Socket) {
    const reader = new FrameReader(64 * 1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) this.onFrame(frame);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      for (const p of this.pending.values()) p.reject(new Error(this.closeReason));
      this.pending.clear();
    });
  }

  /** No hello: a server without auth takes requests at once. */
  static async open(socketPath: string): Promise<RawIpcClient> {
    const socket = netConnect(socketPath);
    await once(socket, "connect");
    return new RawIpcClient(socket);
  }

  /** Sends a copy of `request` (from framed()) under a fresh id; resolves with the answer's MessagePack bytes. */
  send(request: { frame: Buffer; slot: number }): Promise<Buffer> {
    if (this.socket.destroyed) return Promise.reject(new Error(this.closeReason));
    const id = this.nextId++;
    // A copy: the socket may still hold the previous one in its write queue.
    const frame = Buffer.from(request.frame);
    frame.writeUInt32BE(id, request.slot);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(frame);
    });
  }

  private onFrame(frame: Buffer): void {
    if ((frame[0]! & 0xf0) !== 0x80 || !frame.subarray(1, 5).equals(ID_KEY)) {
      this.closeReason = `an answer that does not begin with a uint32 id: ${JSON.stringify(decodeFrame(frame))}`;
      return void this.socket.destroy();
    }
    const id = frame.readUInt32BE(5);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (frame.subarray(9, 9 + RESULT_KEY.length).equals(RESULT_KEY)) p.resolve(frame);
    else p.reject(new Error(`IPC error: ${JSON.stringify((decodeFrame(frame) as { error?: unknown }).error)}`));
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * One streamed generation through the shipped client, timed as sse-client.ts times an SSE stream: the first and
 * last text pieces as the async iterator yields them, the token count from the final frame's usage.
 */
export async function ipcGeneration(client: InfernoClient, req: StreamRequest): Promise<StreamTiming> {
  const startMs = performance.now();
  const stream = client.generate(req.model, { prompt: req.prompt, max_tokens: req.maxTokens, temperature: 0, ...(req.ignoreEos ? { ignore_eos: true } : {}), stream: true });
  let firstTokenMs = 0;
  let lastTokenMs = 0;
  for await (const _ of stream) {
    lastTokenMs = performance.now();
    if (firstTokenMs === 0) firstTokenMs = lastTokenMs;
  }
  const done = await stream.result;
  return { tokens: done.usage.completion_tokens, startMs, firstTokenMs, lastTokenMs, endMs: performance.now(), finishReason: done.finish_reason };
}
