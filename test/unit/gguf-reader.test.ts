// Needs no model: every file is built in memory by test/fixtures/gguf-writer.ts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GgufFormatError, readGgufHeader, summarizeGguf, type GgufHeader, type ReadGgufOptions } from "../../src/gguf/gguf-reader.js";
import { buildGguf, buildTinyLlamaGguf, TINY_LLAMA, type GgufSpec, type GgufTensorSpec, type GgufWriteArray } from "../fixtures/gguf-writer.js";

let dir = "";
let counter = 0;
before(async () => { dir = await mkdtemp(path.join(tmpdir(), "gguf-reader-")); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function parse(bytes: Buffer | string, opts?: ReadGgufOptions): Promise<GgufHeader> {
  const file = path.join(dir, `f${counter++}.gguf`);
  await writeFile(file, bytes);
  return readGgufHeader(file, opts);
}

async function rejects(bytes: Buffer | string, reason: string, opts?: ReadGgufOptions): Promise<void> {
  await assert.rejects(parse(bytes, opts), (err: unknown) => {
    assert.ok(err instanceof GgufFormatError, `expected GgufFormatError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

const f32 = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i / 8);

function smallSpec(tensors?: GgufTensorSpec[]): GgufSpec {
  return {
    metadata: [
      ["general.architecture", "string", "llama"],
      ["small.u64", "uint64", 7],
      ["big.u64", "uint64", 2n ** 60n],
      ["neg.i64", "int64", -5],
      ["flag", "bool", true],
      ["pi", "float64", Math.PI],
      ["list", "array", { itemType: "int32", items: [1, -2, 3] }],
      ["nested", "array", { itemType: "array", items: [{ itemType: "string", items: ["x", "yz"] }] }],
    ],
    tensors: tensors ?? [
      { name: "a.weight", dims: [4, 2], type: "F32", data: f32(8) },
      { name: "b.weight", dims: [8], type: "F16", data: f32(8) },
    ],
  };
}

const oneTensor = (t: Partial<GgufTensorSpec>): Buffer =>
  buildGguf(smallSpec([{ name: "t", dims: [4], type: "F32", ...t }]));

function patchU64(buf: Buffer, at: number, v: bigint): Buffer {
  const copy = Buffer.from(buf);
  copy.writeBigUInt64LE(v, at);
  return copy;
}

// Offsets of the first metadata entry, for a spec whose first key is `key`.
const firstKeyLenAt = 24;
const firstTypeAt = (key: string): number => 24 + 8 + Buffer.byteLength(key);

test("parses a file from the writer", async () => {
  const h = await parse(buildGguf(smallSpec()));
  assert.equal(h.version, 3);
  assert.equal(h.tensorCount, 2);
  assert.equal(h.metadata["general.architecture"], "llama");
  assert.equal(h.metadata["small.u64"], 7);
  assert.equal(h.metadata["big.u64"], 2n ** 60n);
  assert.equal(h.metadata["neg.i64"], -5);
  assert.equal(h.metadata["flag"], true);
  assert.equal(h.metadata["pi"], Math.PI);
  assert.deepEqual(h.metadata["list"], [1, -2, 3]);
  assert.deepEqual(h.metadata["nested"], [["x", "yz"]]);
  assert.equal(h.dataOffset % 32, 0);
  assert.ok(h.headerBytes <= h.dataOffset);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.dims, t.type, t.offset, t.nbytes]), [
    ["a.weight", [4, 2], "F32", 0, 32],
    ["b.weight", [8], "F16", 32, 16],
  ]);
});

test("summarises long arrays instead of materialising them", async () => {
  const items = Array.from({ length: 3000 }, (_, i) => `tok${i}`);
  const h = await parse(buildGguf({ metadata: [["tokenizer.ggml.tokens", "array", { itemType: "string", items }]], tensors: [] }));
  assert.deepEqual(h.metadata["tokenizer.ggml.tokens"], { type: "array", itemType: "string", length: 3000 });
  const small = await parse(buildGguf({ metadata: [["xs", "array", { itemType: "uint8", items: [1, 2, 3] }]], tensors: [] }), { maxArrayItems: 2 });
  assert.deepEqual(small.metadata["xs"], { type: "array", itemType: "uint8", length: 3 });
});

test("honours general.alignment", async () => {
  const h = await parse(buildGguf({ ...smallSpec(), alignment: 64 }));
  assert.equal(h.dataOffset % 64, 0);
  assert.equal(h.tensors[1]?.offset, 64);
  await rejects(buildGguf({ ...smallSpec(), alignment: 48 }), "bad_alignment");
  await rejects(buildGguf({ metadata: [["general.alignment", "uint64", 32]], tensors: [] }), "bad_alignment");
  await rejects(buildGguf({ metadata: [["general.alignment", "uint32", 0]], tensors: [] }), "bad_alignment");
});

test("summarises the tiny llama fixture", async () => {
  const s = summarizeGguf(await parse(buildTinyLlamaGguf({ contextLength: 512, chatTemplate: "{{ x }}" })));
  assert.equal(s.architecture, "llama");
  assert.equal(s.context_length, 512);
  assert.equal(s.embedding_length, TINY_LLAMA.nEmbd);
  assert.equal(s.block_count, TINY_LLAMA.nBlocks);
  assert.equal(s.quantization, "F32");
  assert.equal(s.has_chat_template, true);
  assert.equal(s.chat_template, "{{ x }}");
  assert.equal(s.bos_token_id, 1);
  assert.equal(s.eos_token_id, 2);
  assert.ok(s.parameters > 0);
  assert.equal(summarizeGguf(await parse(buildTinyLlamaGguf())).has_chat_template, false);
});

test("rejects files that are not GGUF", async () => {
  await rejects(Buffer.alloc(0), "empty_file");
  await rejects("hello, this is a text file\n", "bad_magic");
  // An ONNX ModelProto starts with field 1 (ir_version) as a varint: 0x08 0x07, then field 2.
  await rejects(Buffer.from([0x08, 0x07, 0x12, 0x07, 0x70, 0x79, 0x74, 0x6f, 0x72, 0x63, 0x68]), "bad_magic");
  await rejects("GG", "truncated");
  await rejects("GGUF", "truncated");
});

test("rejects unsupported versions and big-endian files", async () => {
  const good = buildGguf(smallSpec());
  for (const v of [0, 1, 4, 0xffffffff]) {
    const b = Buffer.from(good);
    b.writeUInt32LE(v, 4);
    await rejects(b, "unsupported_version");
  }
  const be = Buffer.from(good);
  be.writeUInt32BE(3, 4);
  await rejects(be, "big_endian");
  const v2 = await parse(buildGguf({ ...smallSpec(), version: 2 }));
  assert.equal(v2.version, 2);
});

test("every truncation throws GgufFormatError", async () => {
  const full = buildGguf(smallSpec());
  const h = await parse(full);
  const last = h.tensors[h.tensors.length - 1];
  assert.ok(last);
  const dataEnd = h.dataOffset + last.offset + last.nbytes;
  const outOfFile = new Set(["empty_file", "truncated", "string_out_of_bounds", "array_out_of_bounds", "too_many_kv", "too_many_tensors", "tensor_out_of_bounds"]);
  for (let cut = 0; cut < dataEnd; cut++) {
    await assert.rejects(parse(full.subarray(0, cut)), (err: unknown) => {
      assert.ok(err instanceof GgufFormatError, `cut ${cut}: ${String(err)}`);
      assert.ok(outOfFile.has(err.reason), `cut ${cut}: ${err.reason}`);
      return true;
    });
  }
});

test("rejects absurd tensor and metadata counts before looping", async () => {
  const good = buildGguf(smallSpec());
  await rejects(patchU64(good, 8, 2n ** 63n), "too_many_tensors");
  await rejects(patchU64(good, 8, 1_000_000n), "too_many_tensors");
  await rejects(patchU64(good, 16, 2n ** 64n - 1n), "too_many_kv");
  await rejects(patchU64(good, 16, 1_000_000n), "too_many_kv");
});

test("rejects string and array lengths beyond the file", async () => {
  const good = buildGguf(smallSpec());
  await rejects(patchU64(good, firstKeyLenAt, 1_000_000_000n), "string_out_of_bounds");
  await rejects(patchU64(good, firstKeyLenAt, 2n ** 64n - 1n), "string_out_of_bounds");
  const arr = buildGguf({ metadata: [["arr", "array", { itemType: "uint32", items: [1, 2] }]], tensors: [] });
  const lengthAt = firstTypeAt("arr") + 4 + 4;
  assert.equal(arr.readBigUInt64LE(lengthAt), 2n);
  await rejects(patchU64(arr, lengthAt, 1n << 40n), "array_out_of_bounds");
  const strs = buildGguf({ metadata: [["s", "array", { itemType: "string", items: ["ab"] }]], tensors: [] });
  await rejects(patchU64(strs, firstTypeAt("s") + 16, 1n << 40n), "string_out_of_bounds");
});

test("rejects unknown value types, duplicate keys and deep nesting", async () => {
  const good = buildGguf(smallSpec());
  const b = Buffer.from(good);
  b.writeUInt32LE(13, firstTypeAt("general.architecture"));
  await rejects(b, "unknown_value_type");
  const arr = buildGguf({ metadata: [["arr", "array", { itemType: "uint32", items: [1] }]], tensors: [] });
  const bad = Buffer.from(arr);
  bad.writeUInt32LE(99, firstTypeAt("arr") + 4);
  await rejects(bad, "unknown_value_type");
  await rejects(buildGguf({ metadata: [["k", "uint8", 1], ["k", "uint8", 2]], tensors: [] }), "duplicate_key");
  let deep: GgufWriteArray = { itemType: "uint8", items: [1] };
  for (let i = 0; i < 6; i++) deep = { itemType: "array", items: [deep] };
  await rejects(buildGguf({ metadata: [["deep", "array", deep]], tensors: [] }), "array_too_deep");
});

test("rejects bad tensor infos", async () => {
  await rejects(oneTensor({ ggmlTypeId: 4 }), "unknown_ggml_type");
  await rejects(oneTensor({ ggmlTypeId: 1000 }), "unknown_ggml_type");
  await rejects(oneTensor({ dims: [] }), "bad_n_dims");
  await rejects(oneTensor({ dims: [1, 1, 1, 1, 1] }), "bad_n_dims");
  await rejects(oneTensor({ dims: [4, 0] }), "bad_dimension");
  await rejects(oneTensor({ offset: 1_000_000_032 }), "tensor_out_of_bounds");
  await rejects(oneTensor({ offset: 2n ** 63n }), "tensor_out_of_bounds");
  await rejects(oneTensor({ offset: 8 }), "misaligned_offset");
  await rejects(oneTensor({ name: "x".repeat(64) }), "tensor_name_too_long");
  // Q4_0 packs 32 elements per block, so a 16-wide row cannot be stored.
  await rejects(oneTensor({ dims: [16], ggmlTypeId: 2 }), "block_size_mismatch");
  // Huge dims whose product would overflow 64 bits.
  await rejects(oneTensor({ dims: [2 ** 40, 2 ** 40, 2 ** 40], data: Buffer.alloc(16) }), "tensor_out_of_bounds");
  await rejects(buildGguf(smallSpec([
    { name: "dup", dims: [4], type: "F32" },
    { name: "dup", dims: [4], type: "F32" },
  ])), "duplicate_tensor");
  const q = await parse(oneTensor({ dims: [32], ggmlTypeId: 2, data: Buffer.alloc(18) }));
  assert.deepEqual([q.tensors[0]?.type, q.tensors[0]?.nbytes], ["Q4_0", 18]);
});

test("refuses bytes after the tensor data, but not the alignment padding", async () => {
  const good = buildGguf(smallSpec());
  assert.equal(good.length % 32, 0, "the writer pads the last tensor to the alignment");
  await parse(good);
  await parse(good.subarray(0, good.length - 8)); // unpadded last tensor: still fine
  await rejects(Buffer.concat([good, Buffer.alloc(1)]), "trailing_data");
  await rejects(Buffer.concat([good, Buffer.alloc(1 << 20)]), "trailing_data");
  const noTensors = buildGguf({ metadata: [["general.architecture", "string", "llama"]], tensors: [] });
  await parse(noTensors);
  await rejects(Buffer.concat([noTensors, Buffer.alloc(64)]), "trailing_data");
});

test("caps the bytes it will read as header", async () => {
  const items = Array.from({ length: 2000 }, (_, i) => `token-${i}`);
  const big = buildGguf({ metadata: [["v", "array", { itemType: "string", items }]], tensors: [] });
  await rejects(big, "header_too_large", { maxMetadataBytes: 4096 });
});

test("random byte flips either parse or throw GgufFormatError", async () => {
  const good = buildGguf(smallSpec());
  let s = 1234;
  const rand = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
  let parsed = 0;
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(good);
    const flips = 1 + rand(4);
    for (let f = 0; f < flips; f++) b[rand(b.length)] = rand(256);
    try {
      await parse(b);
      parsed++;
    } catch (err) {
      assert.ok(err instanceof GgufFormatError, `mutation ${i}: ${String(err)}`);
    }
  }
  assert.ok(parsed < 300);
});
