// Needs the shared test models: stories260K.gguf, llama-2-tiny-random.gguf and the .onnx files
// described in shared/models/MODELS.md. Skips when that folder is absent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { GgufFormatError, ggufArrayLength, readGgufHeader, summarizeGguf } from "../../src/gguf/gguf-reader.js";

const modelsDir = process.env.INFERNO_SHARED_MODELS ?? path.resolve(process.cwd(), "../shared/models");
const haveModels = existsSync(modelsDir);

test("stories260K.gguf matches MODELS.md", async (t) => {
  if (!haveModels) return t.skip(`no shared models at ${modelsDir}`);
  const file = path.join(modelsDir, "stories260K.gguf");
  const h = await readGgufHeader(file);
  const s = summarizeGguf(h);
  assert.equal(s.architecture, "llama");
  assert.equal(s.context_length, 2048);
  assert.equal(s.embedding_length, 64);
  assert.equal(s.block_count, 5);
  assert.equal(ggufArrayLength(h.metadata["tokenizer.ggml.tokens"]), 512);
  assert.equal(s.vocab_size, 512);
  // The file has no general.file_type, so the name comes from its (all-F32) tensors.
  assert.equal(h.metadata["general.file_type"], undefined);
  assert.equal(s.quantization, "F32");
  assert.ok(h.tensors.every((tensor) => tensor.type === "F32"));
  assert.equal(s.has_chat_template, false);
  assert.equal(s.bos_token_id, 1);
  assert.equal(s.eos_token_id, 2);
  assert.ok(s.parameters > 0);
  assert.equal(s.size_bytes, (await stat(file)).size);
});

test("llama-2-tiny-random.gguf matches MODELS.md", async (t) => {
  if (!haveModels) return t.skip(`no shared models at ${modelsDir}`);
  const file = path.join(modelsDir, "llama-2-tiny-random.gguf");
  const h = await readGgufHeader(file);
  const s = summarizeGguf(h);
  assert.equal(s.architecture, "llama");
  assert.equal(s.name, "LLaMA v2");
  assert.equal(s.context_length, 4096);
  assert.equal(s.embedding_length, 8);
  assert.equal(s.block_count, 1);
  // 32k entries: kept as a summary, not materialised.
  assert.deepEqual(h.metadata["tokenizer.ggml.tokens"], { type: "array", itemType: "string", length: 32000 });
  assert.equal(s.vocab_size, 32000);
  assert.equal(h.metadata["general.file_type"], 1);
  assert.equal(s.quantization, "F16");
  assert.equal(s.has_chat_template, false);
  assert.ok(s.parameters > 0);
  assert.equal(s.size_bytes, (await stat(file)).size);
});

test("ONNX files are rejected as bad_magic", async (t) => {
  if (!haveModels) return t.skip(`no shared models at ${modelsDir}`);
  const onnx = (await readdir(modelsDir)).filter((f) => f.endsWith(".onnx"));
  assert.ok(onnx.length > 0);
  for (const f of onnx) {
    await assert.rejects(readGgufHeader(path.join(modelsDir, f)), (err: unknown) => {
      assert.ok(err instanceof GgufFormatError);
      assert.equal(err.reason, "bad_magic");
      return true;
    });
  }
});
