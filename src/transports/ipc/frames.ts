// IPC framing: a 4-byte unsigned big-endian length, then that many bytes of one MessagePack map.
import { Decoder, Encoder } from "@msgpack/msgpack";
import { InfernoError } from "../../errors/catalogue.js";
import { OWN_BUFFER_BYTES, ownBuffer } from "../../runtimes/onnx/session-protocol.js";

export const LENGTH_BYTES = 4;

/**
 * Collects socket chunks into whole frames. A frame that fits in one chunk is a view of it (no copy); one
 * split across chunks is joined once, into a buffer of its own. A declared length over `maxFrameBytes`
 * throws PAYLOAD_TOO_LARGE before anything is buffered for it.
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
      const length = this.readLength();
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

  /** The next frame's declared length; a prefix split across chunks is read from them as they are (nothing joined). */
  private readLength(): number {
    const first = this.pending[0]!;
    if (first.length >= LENGTH_BYTES) return first.readUInt32BE(0);
    const head = Buffer.alloc(LENGTH_BYTES);
    let filled = 0;
    for (const chunk of this.pending) {
      filled += chunk.copy(head, filled, 0, Math.min(chunk.length, LENGTH_BYTES - filled));
      if (filled === LENGTH_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    this.pendingBytes -= n;
    const first = this.pending[0]!;
    if (first.length >= n) {
      if (first.length > n) this.pending[0] = first.subarray(n);
      else this.pending.shift();
      return first.subarray(0, n);
    }
    // Split across chunks: joined once, this frame alone. A large one gets a buffer of its own (ownBuffer), so that a
    // tensor in it can move to the session's thread without a copy; the next frame's bytes stay where they are.
    const own = n >= OWN_BUFFER_BYTES;
    const out = own ? Buffer.allocUnsafeSlow(n) : Buffer.allocUnsafe(n);
    for (let filled = 0; filled < n; ) {
      const chunk = this.pending[0]!;
      const part = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, part);
      filled += part;
      if (part < chunk.length) this.pending[0] = chunk.subarray(part);
      else this.pending.shift();
    }
    if (own) ownBuffer(out.buffer as ArrayBuffer);
    return out;
  }
}

const encoder = new Encoder({ ignoreUndefined: true });

/** One message as a frame: the length prefix and the MessagePack bytes in one buffer (copied once, from the encoder's own). */
export function encodeFrame(message: unknown): Buffer {
  const body = encoder.encodeSharedRef(message);
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
