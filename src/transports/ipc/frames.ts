// IPC framing: a 4-byte unsigned big-endian length, then that many bytes of one MessagePack map.
import { Decoder, Encoder } from "@msgpack/msgpack";
import { InfernoError } from "../../errors/catalogue.js";

export const LENGTH_BYTES = 4;

/**
 * Collects socket chunks into whole frames. A frame that fits in one chunk is a view of it (no copy); one
 * split across chunks is joined once. A declared length over `maxFrameBytes` throws PAYLOAD_TOO_LARGE before
 * anything is buffered for it.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.pendingBytes < LENGTH_BYTES) break;
      const head = this.peek(LENGTH_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new InfernoError("PAYLOAD_TOO_LARGE", `a frame of ${length} bytes is over this server's limit of ${this.maxFrameBytes}`, {
          limit: this.maxFrameBytes, got: length,
        });
      }
      if (this.pendingBytes < LENGTH_BYTES + length) break;
      frames.push(this.take(LENGTH_BYTES + length).subarray(LENGTH_BYTES));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.pending[0]!;
    if (first.length >= n) return first;
    this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!;
  }

  private take(n: number): Buffer {
    let first = this.peek(n);
    const out = first.subarray(0, n);
    first = first.subarray(n);
    if (first.length > 0) this.pending[0] = first;
    else this.pending.shift();
    this.pendingBytes -= n;
    return out;
  }
}

const encoder = new Encoder({ ignoreUndefined: true });

/** One message as a frame: the length prefix and the MessagePack bytes in one buffer. */
export function encodeFrame(message: unknown): Buffer {
  const body = encoder.encode(message);
  const frame = Buffer.allocUnsafe(LENGTH_BYTES + body.byteLength);
  frame.writeUInt32BE(body.byteLength, 0);
  frame.set(body, LENGTH_BYTES);
  return frame;
}

/**
 * A frame's MessagePack value. Declared lengths inside it are bounded by the frame's size (a header claiming
 * four billion array elements is refused, not allocated); bins are views of the frame (no copy).
 */
export function decodeFrame(frame: Buffer): unknown {
  const n = frame.length;
  const decoder = new Decoder({ maxStrLength: n, maxBinLength: n, maxArrayLength: n, maxMapLength: n, maxExtLength: n });
  return decoder.decode(frame);
}
