import { open, type FileHandle } from "node:fs/promises";
import { GGML_TYPES, ggmlTypeName } from "./ggml-types.js";

export { ggmlTypeName } from "./ggml-types.js";
export { ggufArrayLength, summarizeGguf, type GgufSummary } from "./gguf-summary.js";

// Everything here runs before a file reaches llama.cpp: the native loader trusts counts, lengths,
// types and offsets, and a hostile or truncated file can abort the whole process there.

/** A .gguf file that is not safe to hand to the native loader; `reason` is short and stable. */
export class GgufFormatError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "GgufFormatError";
    this.reason = reason;
  }
}

/** GGUF metadata value types, in id order (0..12). */
export type GgufValueTypeName =
  | "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32"
  | "bool" | "string" | "array" | "uint64" | "int64" | "float64";

/** Stands in for an array too long to be worth materialising (e.g. a 150k-entry vocabulary). */
export interface GgufArraySummary { type: "array"; itemType: GgufValueTypeName; length: number }

/** A metadata value; 64-bit integers are numbers when safe, bigints otherwise. */
export type GgufValue = number | bigint | boolean | string | GgufValue[] | GgufArraySummary;

/** One tensor's description; `offset` is relative to `dataOffset`. */
export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: string;
  typeId: number;
  offset: number;
  nbytes: number;
  elements: number;
}

/** The validated header of a GGUF file. */
export interface GgufHeader {
  version: number;
  tensorCount: number;
  metadata: Record<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute file offset where tensor data starts (header end rounded up to the alignment). */
  dataOffset: number;
  fileSize: number;
  /** Bytes of magic, counts, metadata and tensor infos, before alignment padding. */
  headerBytes: number;
}

/** Limits for readGgufHeader. */
export interface ReadGgufOptions {
  /** Cap on header bytes read; the 7B vocabularies are a few MB, so 64 MiB is generous. */
  maxMetadataBytes?: number;
  /** Arrays longer than this come back as a GgufArraySummary. */
  maxArrayItems?: number;
}

const VALUE_TYPES: readonly GgufValueTypeName[] = [
  "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
  "bool", "string", "array", "uint64", "int64", "float64",
];
const T_STRING = 8;
const T_ARRAY = 9;
// Fixed byte sizes per value type; strings and arrays are their smallest encoding (length prefixes).
const VALUE_MIN_SIZE: readonly number[] = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const minSize = (type: number): number => VALUE_MIN_SIZE[type] ?? 1;

const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64; // includes the NUL terminator in ggml's fixed-size name field
const MAX_ARRAY_DEPTH = 4;
const CHUNK_BYTES = 256 * 1024;
// Smallest possible encodings: key length + type + 1-byte value; name length + n_dims + 1 dim + type + offset.
const MIN_KV_BYTES = 13n;
const MIN_TENSOR_INFO_BYTES = 32n;

/** Reads forward through a file in bounded chunks, refilling only when a read needs it. */
class ChunkedReader {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;

  constructor(private readonly fh: FileHandle, readonly fileSize: number, private readonly cap: number) {}

  remaining(): number {
    return this.fileSize - this.pos;
  }

  private checkBounds(n: number, what: string): void {
    if (this.pos + n > this.fileSize) {
      throw new GgufFormatError("truncated", `file ends at byte ${this.fileSize} while reading ${what} at ${this.pos}`);
    }
    if (this.pos + n > this.cap) {
      throw new GgufFormatError("header_too_large", `header exceeds the ${this.cap}-byte limit`);
    }
  }

  async bytes(n: number, what: string): Promise<Buffer> {
    if (this.pos + n > this.bufStart + this.buf.length) await this.fill(n, what);
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  skip(n: number, what: string): void {
    this.checkBounds(n, what);
    this.pos += n;
  }

  private async fill(n: number, what: string): Promise<void> {
    this.checkBounds(n, what);
    const want = Math.min(Math.max(n, CHUNK_BYTES), this.fileSize - this.pos, this.cap - this.pos);
    const chunk = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.fh.read(chunk, got, want - got, this.pos + got);
      if (bytesRead === 0) break; // the file shrank under us
      got += bytesRead;
    }
    if (got < n) throw new GgufFormatError("truncated", `short read of ${what} at ${this.pos}`);
    this.buf = chunk.subarray(0, got);
    this.bufStart = this.pos;
  }

  async u32(what: string): Promise<number> {
    return (await this.bytes(4, what)).readUInt32LE(0);
  }

  async u64(what: string): Promise<bigint> {
    return (await this.bytes(8, what)).readBigUInt64LE(0);
  }

  /** Reads a string length and checks it against the file before touching the bytes. */
  async stringLength(what: string): Promise<number> {
    const len = await this.u64(`${what} length`);
    if (len > BigInt(this.remaining())) {
      throw new GgufFormatError("string_out_of_bounds", `${what} claims ${len} bytes, only ${this.remaining()} left`);
    }
    return Number(len);
  }

  async string(what: string): Promise<string> {
    const len = await this.stringLength(what);
    return (await this.bytes(len, what)).toString("utf8");
  }
}

const alignUp = (n: bigint, alignment: bigint): bigint => ((n + alignment - 1n) / alignment) * alignment;

function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

async function readScalar(r: ChunkedReader, type: number, key: string): Promise<GgufValue> {
  if (type === T_STRING) return r.string(`value of ${key}`);
  const size = minSize(type);
  const b = await r.bytes(size, `value of ${key}`);
  switch (type) {
    case 0: return b.readUInt8(0);
    case 1: return b.readInt8(0);
    case 2: return b.readUInt16LE(0);
    case 3: return b.readInt16LE(0);
    case 4: return b.readUInt32LE(0);
    case 5: return b.readInt32LE(0);
    case 6: return b.readFloatLE(0);
    case 7: return b.readUInt8(0) !== 0;
    case 10: return toNumberIfSafe(b.readBigUInt64LE(0));
    case 11: return toNumberIfSafe(b.readBigInt64LE(0));
    default: return b.readDoubleLE(0);
  }
}

async function readValueType(r: ChunkedReader, key: string): Promise<number> {
  const type = await r.u32(`type of ${key}`);
  if (type >= VALUE_TYPES.length) throw new GgufFormatError("unknown_value_type", `${key} has unknown value type ${type}`);
  return type;
}

async function readValue(r: ChunkedReader, type: number, key: string, depth: number, maxItems: number): Promise<GgufValue> {
  if (type !== T_ARRAY) return readScalar(r, type, key);
  if (depth >= MAX_ARRAY_DEPTH) throw new GgufFormatError("array_too_deep", `${key} nests arrays deeper than ${MAX_ARRAY_DEPTH}`);
  const itemType = await readValueType(r, `${key}[]`);
  const length = await r.u64(`length of ${key}`);
  const minItem = BigInt(minSize(itemType));
  if (length * minItem > BigInt(r.remaining())) {
    throw new GgufFormatError("array_out_of_bounds", `${key} claims ${length} items, more than the file can hold`);
  }
  const n = Number(length);
  if (n <= maxItems) {
    const items: GgufValue[] = [];
    for (let i = 0; i < n; i++) items.push(await readValue(r, itemType, key, depth + 1, maxItems));
    return items;
  }
  await skipItems(r, itemType, n, key, depth + 1);
  return { type: "array", itemType: VALUE_TYPES[itemType] ?? "uint8", length: n };
}

// Walks over items without keeping them, still checking every length it crosses.
async function skipItems(r: ChunkedReader, itemType: number, n: number, key: string, depth: number): Promise<void> {
  if (itemType === T_STRING) {
    for (let i = 0; i < n; i++) r.skip(await r.stringLength(`${key}[${i}]`), `${key}[${i}]`);
  } else if (itemType === T_ARRAY) {
    if (depth >= MAX_ARRAY_DEPTH) throw new GgufFormatError("array_too_deep", `${key} nests arrays deeper than ${MAX_ARRAY_DEPTH}`);
    for (let i = 0; i < n; i++) {
      const inner = await readValueType(r, `${key}[${i}]`);
      const len = await r.u64(`length of ${key}[${i}]`);
      if (len * BigInt(minSize(inner)) > BigInt(r.remaining())) {
        throw new GgufFormatError("array_out_of_bounds", `${key}[${i}] claims ${len} items, more than the file can hold`);
      }
      await skipItems(r, inner, Number(len), key, depth + 1);
    }
  } else {
    r.skip(n * minSize(itemType), key);
  }
}

async function readPreamble(r: ChunkedReader): Promise<{ version: number; tensorCount: bigint; kvCount: bigint }> {
  if (r.fileSize === 0) throw new GgufFormatError("empty_file", "file is empty");
  const head = await r.bytes(Math.min(4, r.fileSize), "magic");
  if (!head.equals(Buffer.from("GGUF").subarray(0, head.length))) {
    throw new GgufFormatError("bad_magic", "not a GGUF file (magic is not 'GGUF')");
  }
  if (head.length < 4) throw new GgufFormatError("truncated", "file ends inside the magic");
  const vb = await r.bytes(4, "version");
  const version = vb.readUInt32LE(0);
  if (version !== 2 && version !== 3) {
    const be = vb.readUInt32BE(0);
    if (be >= 1 && be <= 3) throw new GgufFormatError("big_endian", "big-endian GGUF files are not supported");
    throw new GgufFormatError("unsupported_version", `GGUF version ${version} is not supported (2 or 3)`);
  }
  const tensorCount = await r.u64("tensor count");
  const kvCount = await r.u64("metadata count");
  const room = BigInt(r.remaining());
  if (kvCount * MIN_KV_BYTES > room) throw new GgufFormatError("too_many_kv", `metadata count ${kvCount} cannot fit in the file`);
  if (tensorCount * MIN_TENSOR_INFO_BYTES > room) throw new GgufFormatError("too_many_tensors", `tensor count ${tensorCount} cannot fit in the file`);
  if (kvCount * MIN_KV_BYTES + tensorCount * MIN_TENSOR_INFO_BYTES > room) {
    throw new GgufFormatError("truncated", "file is too small for its metadata and tensor counts");
  }
  return { version, tensorCount, kvCount };
}

async function readMetadata(r: ChunkedReader, count: number, maxItems: number): Promise<{ metadata: Record<string, GgufValue>; alignment: number }> {
  // No prototype, so a key like "__proto__" in a hostile file is just a key.
  const metadata = Object.create(null) as Record<string, GgufValue>;
  let alignment = 32;
  for (let i = 0; i < count; i++) {
    const key = await r.string(`metadata key #${i}`);
    if (Object.hasOwn(metadata, key)) throw new GgufFormatError("duplicate_key", `metadata key ${JSON.stringify(key)} appears twice`);
    const type = await readValueType(r, key);
    const value = await readValue(r, type, key, 0, maxItems);
    if (key === "general.alignment") {
      // ggml reads this with gguf_get_val_u32, which asserts (aborts) on any other type.
      if (type !== 4 || typeof value !== "number" || value === 0 || (value & (value - 1)) !== 0) {
        throw new GgufFormatError("bad_alignment", "general.alignment must be a uint32 power of two");
      }
      alignment = value;
    }
    metadata[key] = value;
  }
  return { metadata, alignment };
}

interface RawTensor { name: string; dims: number[]; typeId: number; offset: bigint; nbytes: bigint; elements: bigint }

async function readTensorInfo(r: ChunkedReader, i: number, seen: Set<string>): Promise<RawTensor> {
  const name = await r.string(`tensor #${i} name`);
  if (Buffer.byteLength(name) >= GGML_MAX_NAME) throw new GgufFormatError("tensor_name_too_long", `tensor #${i} name is longer than ${GGML_MAX_NAME - 1} bytes`);
  if (seen.has(name)) throw new GgufFormatError("duplicate_tensor", `tensor ${JSON.stringify(name)} appears twice`);
  seen.add(name);
  const nDims = await r.u32(`n_dims of ${name}`);
  if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new GgufFormatError("bad_n_dims", `tensor ${name} has ${nDims} dims (1..${GGML_MAX_DIMS})`);
  const dims: bigint[] = [];
  for (let d = 0; d < nDims; d++) dims.push(await r.u64(`dim ${d} of ${name}`));
  const typeId = await r.u32(`type of ${name}`);
  const offset = await r.u64(`offset of ${name}`);
  const known = GGML_TYPES[typeId];
  if (!known) throw new GgufFormatError("unknown_ggml_type", `tensor ${name} has unknown ggml type ${typeId}`);
  const [typeName, blockSize, typeSize] = known;
  // Elements stay bigint until they are known to fit the file, so a hostile product cannot overflow.
  let elements = 1n;
  for (const d of dims) {
    if (d === 0n) throw new GgufFormatError("bad_dimension", `tensor ${name} has a zero dimension`);
    elements *= d;
    if (elements > BigInt(r.fileSize) * 256n) throw new GgufFormatError("tensor_out_of_bounds", `tensor ${name} is larger than the file`);
  }
  if ((dims[0] ?? 0n) % BigInt(blockSize) !== 0n) {
    throw new GgufFormatError("block_size_mismatch", `tensor ${name} (${typeName}) first dim is not a multiple of ${blockSize}`);
  }
  const nbytes = (elements / BigInt(blockSize)) * BigInt(typeSize);
  return { name, dims: dims.map(Number), typeId, offset, nbytes, elements };
}

/** Reads and validates a GGUF header without reading tensor data; throws GgufFormatError on anything unsafe. */
export async function readGgufHeader(filePath: string, opts: ReadGgufOptions = {}): Promise<GgufHeader> {
  const cap = opts.maxMetadataBytes ?? 64 * 1024 * 1024;
  const maxItems = opts.maxArrayItems ?? 1024;
  const fh = await open(filePath, "r");
  try {
    const { size } = await fh.stat();
    const r = new ChunkedReader(fh, size, cap);
    const { version, tensorCount, kvCount } = await readPreamble(r);
    const { metadata, alignment } = await readMetadata(r, Number(kvCount), maxItems);
    const raw: RawTensor[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < Number(tensorCount); i++) raw.push(await readTensorInfo(r, i, seen));
    const headerBytes = r.pos;
    const dataOffset = Math.ceil(headerBytes / alignment) * alignment;
    let dataEnd = BigInt(dataOffset);
    const tensors = raw.map((t): GgufTensorInfo => {
      if (t.offset % BigInt(alignment) !== 0n) {
        throw new GgufFormatError("misaligned_offset", `tensor ${t.name} offset ${t.offset} is not a multiple of ${alignment}`);
      }
      if (BigInt(dataOffset) + t.offset + t.nbytes > BigInt(size)) {
        throw new GgufFormatError("tensor_out_of_bounds", `tensor ${t.name} data ends past the end of the file`);
      }
      if (BigInt(dataOffset) + t.offset + t.nbytes > dataEnd) dataEnd = BigInt(dataOffset) + t.offset + t.nbytes;
      const type = ggmlTypeName(t.typeId) ?? "unknown";
      return { name: t.name, dims: t.dims, type, typeId: t.typeId, offset: Number(t.offset), nbytes: Number(t.nbytes), elements: Number(t.elements) };
    });
    // llama.cpp maps (and prefetches) the whole file, so bytes after the last tensor are memory the
    // model takes without accounting for it: a valid model with a 50 GB sparse tail filled the machine.
    const end = tensors.length > 0 ? alignUp(dataEnd, BigInt(alignment)) : BigInt(dataOffset);
    if (BigInt(size) > end) {
      throw new GgufFormatError("trailing_data", `file has ${BigInt(size) - end} bytes after its tensor data ends at byte ${end}`);
    }
    return { version, tensorCount: tensors.length, metadata, tensors, dataOffset, fileSize: size, headerBytes };
  } finally {
    await fh.close();
  }
}
