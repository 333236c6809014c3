import type { FileHandle } from "node:fs/promises";

// A forward-only protobuf wire-format reader over a file. Every read is bounded by an `end` (the
// enclosing message's last byte), so a length can never reach outside its parent, and payloads
// that are skipped are never read: skipping only moves `pos`.
//
// Tags, varints and skips are synchronous over a buffered window: a message walk calls
// `if (!r.ready(end)) await r.fill(end)` once per field, so a run of thousands of small fields
// costs no promises (which matters under async_hooks, where each promise is tracked).

/**
 * An .onnx file that cannot be read safely; `reason` is short and stable: empty_file, not_protobuf,
 * truncated, bad_tag, bad_wire_type, bad_varint, length_out_of_bounds, too_deep, too_large,
 * no_graph, no_ir_version, no_opset.
 */
export class OnnxFormatError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "OnnxFormatError";
    this.reason = reason;
  }
}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** Deepest nesting of messages below the top one; protobuf's own parser stops at the same depth. */
export const MAX_DEPTH = 100;

const MAX_VARINT_BYTES = 10;
/** A tag and the varint after it: what one field needs buffered before it is decoded. */
const FIELD_HEAD_BYTES = 2 * MAX_VARINT_BYTES;
// Reads start small after a seek (what follows is one tensor's name, often a few small tensors)
// and grow while the walk stays sequential (runs of nodes), so skipping a large payload costs one
// small read. Each read is a thread-pool round trip, which costs far more than its bytes.
const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 1024 * 1024;

export class ProtoReader {
  pos = 0;
  // One buffer, reused by every refill; it grows to MAX_CHUNK, or to the longest string read.
  private buf: Buffer = Buffer.alloc(0);
  private bufLen = 0;
  private bufStart = 0;
  private chunk = MIN_CHUNK;
  private stringBudget: number;

  constructor(private readonly fh: FileHandle, readonly fileSize: number, maxStringBytes: number) {
    this.stringBudget = maxStringBytes;
  }

  private has(n: number): boolean {
    return this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen;
  }

  /** Whether the next field's tag and first varint are buffered (or all that is left before `end`). */
  ready(end: number): boolean {
    return this.has(Math.min(FIELD_HEAD_BYTES, end - this.pos));
  }

  /** Buffers what `ready` asks for. */
  fill(end: number): Promise<void> {
    return this.refill(Math.min(FIELD_HEAD_BYTES, end - this.pos));
  }

  /** Refills `buf` from `pos` with at least n bytes; callers have already checked them against `end`. */
  private async refill(n: number): Promise<void> {
    if (this.bufLen > 0) {
      const sequential = this.pos >= this.bufStart && this.pos <= this.bufStart + this.bufLen;
      this.chunk = sequential ? Math.min(this.chunk * 2, MAX_CHUNK) : MIN_CHUNK;
    }
    const want = Math.min(Math.max(n, this.chunk), this.fileSize - this.pos);
    if (want > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(want, Math.min(this.buf.length * 2, MAX_CHUNK)));
    this.bufStart = this.pos;
    this.bufLen = 0;
    while (this.bufLen < want) {
      const { bytesRead } = await this.fh.read(this.buf, this.bufLen, want - this.bufLen, this.pos + this.bufLen);
      if (bytesRead === 0) break; // the file shrank under us
      this.bufLen += bytesRead;
    }
    if (this.bufLen < n) throw new OnnxFormatError("truncated", `short read at byte ${this.pos}: the file ends early`);
  }

  /** The byte length of the varint at `pos`, which `ready` has buffered. */
  private varintLength(end: number, what: string): number {
    const avail = Math.min(MAX_VARINT_BYTES, end - this.pos);
    if (avail <= 0) throw new OnnxFormatError("truncated", `${what} at byte ${this.pos} starts past the end of its message`);
    if (!this.has(avail)) throw new Error(`ProtoReader: ${what} at byte ${this.pos} was not buffered (missing ready/fill)`);
    const at = this.pos - this.bufStart;
    for (let i = 0; i < avail; i++) if ((this.buf[at + i] ?? 0) < 0x80) return i + 1;
    if (avail < MAX_VARINT_BYTES) throw new OnnxFormatError("truncated", `${what} at byte ${this.pos} runs past the end of its message`);
    throw new OnnxFormatError("bad_varint", `${what} at byte ${this.pos} is longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** An unsigned varint as a number: exact up to 2^53, which covers every length and tag. */
  private varint(end: number, what: string): number {
    const n = this.varintLength(end, what);
    const at = this.pos - this.bufStart;
    let value = 0;
    for (let i = n - 1; i >= 0; i--) value = value * 128 + ((this.buf[at + i] ?? 0) & 0x7f);
    this.pos += n;
    return value;
  }

  /** An int64/int32/enum varint, two's complement as protobuf encodes negatives (10 bytes). */
  int64(end: number, what: string): number {
    const n = this.varintLength(end, what);
    const at = this.pos - this.bufStart;
    let value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 7n) | BigInt((this.buf[at + i] ?? 0) & 0x7f);
    this.pos += n;
    return Number(BigInt.asIntN(64, value));
  }

  /** Reads a field's tag as [field number, wire type]; groups (wire types 3 and 4) are refused. */
  tag(end: number): [number, number] {
    const at = this.pos;
    const tag = this.varint(end, "field tag");
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0 || tag > 0xffffffff) throw new OnnxFormatError("bad_tag", `invalid field tag ${tag} at byte ${at}`);
    if (wire !== WIRE_VARINT && wire !== WIRE_FIXED64 && wire !== WIRE_LEN && wire !== WIRE_FIXED32) {
      throw new OnnxFormatError("bad_wire_type", `field ${field} at byte ${at} has wire type ${wire}${wire === 3 || wire === 4 ? " (groups are not supported)" : ""}`);
    }
    return [field, wire];
  }

  /** Reads a length prefix and returns where that payload ends, after checking it fits its parent. */
  private lengthEnd(end: number, what: string): number {
    const at = this.pos;
    const len = this.varint(end, `length of ${what}`);
    if (len > end - this.pos) {
      const where = end === this.fileSize ? "the file" : "its parent message";
      throw new OnnxFormatError("length_out_of_bounds", `${what} at byte ${at} claims ${len} bytes, past the end of ${where}`);
    }
    return this.pos + len;
  }

  /** Enters a nested message: its end, checked against the parent, and the depth limit. */
  message(end: number, depth: number, what: string): number {
    if (depth > MAX_DEPTH) throw new OnnxFormatError("too_deep", `${what} at byte ${this.pos} is nested deeper than ${MAX_DEPTH} messages`);
    return this.lengthEnd(end, what);
  }

  /** A length-delimited UTF-8 string, charged to the reader's string budget. */
  async string(end: number, what: string): Promise<string> {
    const stop = this.lengthEnd(end, what);
    const len = stop - this.pos;
    if (len > this.stringBudget) throw new OnnxFormatError("too_large", `${what} at byte ${this.pos} would exceed the limit on string bytes`);
    this.stringBudget -= len;
    if (!this.has(len)) await this.refill(len);
    const at = this.pos - this.bufStart;
    this.pos = stop;
    return this.buf.toString("utf8", at, at + len);
  }

  /** Skips one field's value of the given wire type without reading a length-delimited payload. */
  skip(wire: number, end: number, field: number): void {
    if (wire === WIRE_VARINT) {
      this.pos += this.varintLength(end, `field ${field}`);
    } else if (wire === WIRE_LEN) {
      this.pos = this.lengthEnd(end, `field ${field}`);
    } else {
      const size = wire === WIRE_FIXED64 ? 8 : 4;
      if (size > end - this.pos) throw new OnnxFormatError("truncated", `field ${field} at byte ${this.pos} runs past the end of its message`);
      this.pos += size;
    }
  }
}
