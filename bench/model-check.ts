// What the model-file check (a load in a child process before the in-process load, see
// src/runtimes/llama/gguf-probe.ts) adds to a model's first load, measured as a user sees it: the time
// of `POST /models/{id}/load` over HTTP on a fresh server, with the check, without it (probeModels
// false), and with the verdict already remembered (a restart on the same data dir).
//
//   npm run build && node dist/bench/model-check.js [--runs 5] [--model PATH]... [--no-generated]
//
// Besides the models given, it generates a random-weight F16 GGUF with the shape of a 0.5B llama
// (896 wide, 24 blocks, FFN 4864, 14 heads / 2 KV heads, 32k vocabulary; ~0.8 GB), since no mid-size
// model can be downloaded here. Page cache is warm for every run (the file was just written or read).
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/config.js";
import { buildServer } from "../src/server.js";
import { buildGguf, type GgufMetadataEntry, type GgufTensorSpec } from "../test/fixtures/gguf-writer.js";
import { prng } from "../test/fixtures/prng.js";

const SHAPE = { nEmbd: 896, nBlocks: 24, nFf: 4864, nHead: 14, nHeadKv: 2, nVocab: 32000 } as const;

/** F16 bytes of a random block, tiled: values are irrelevant to load time, and tiling keeps generation fast. */
function randomF16(elements: number, block: Buffer): Buffer {
  const out = Buffer.allocUnsafe(elements * 2);
  for (let at = 0; at < out.length; at += block.length) block.copy(out, at, 0, Math.min(block.length, out.length - at));
  return out;
}

function midSizeGguf(): Buffer {
  const { nEmbd, nBlocks, nFf, nHead, nHeadKv, nVocab } = SHAPE;
  const rand = prng(7);
  const block = Buffer.alloc(1 << 20);
  // Halves of small values (|x| < 0.06): exponent 0x2800..0x2bff, random mantissa and sign.
  for (let i = 0; i < block.length; i += 2) block.writeUInt16LE((rand() < 0.5 ? 0x8000 : 0) | (0x2800 + Math.floor(rand() * 0x400)), i);
  const nKv = (nEmbd / nHead) * nHeadKv;
  const t = (name: string, dims: number[]): GgufTensorSpec => ({ name, dims, type: "F16", data: randomF16(dims[0]! * (dims[1] ?? 1), block) });
  const norm = (name: string): GgufTensorSpec => ({ name, dims: [nEmbd], type: "F32", data: new Float32Array(nEmbd).fill(1) });
  const tensors = [t("token_embd.weight", [nEmbd, nVocab]), norm("output_norm.weight"), t("output.weight", [nEmbd, nVocab])];
  for (let i = 0; i < nBlocks; i++) {
    tensors.push(
      norm(`blk.${i}.attn_norm.weight`), t(`blk.${i}.attn_q.weight`, [nEmbd, nEmbd]), t(`blk.${i}.attn_k.weight`, [nEmbd, nKv]),
      t(`blk.${i}.attn_v.weight`, [nEmbd, nKv]), t(`blk.${i}.attn_output.weight`, [nEmbd, nEmbd]), norm(`blk.${i}.ffn_norm.weight`),
      t(`blk.${i}.ffn_gate.weight`, [nEmbd, nFf]), t(`blk.${i}.ffn_up.weight`, [nEmbd, nFf]), t(`blk.${i}.ffn_down.weight`, [nFf, nEmbd]),
    );
  }
  const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)];
  while (tokens.length < nVocab) tokens.push(`▁w${tokens.length}`);
  const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  const metadata: GgufMetadataEntry[] = [
    ["general.architecture", "string", "llama"], ["general.name", "string", "random-0.5b-shape"], ["general.file_type", "uint32", 1],
    ["llama.context_length", "uint32", 4096], ["llama.embedding_length", "uint32", nEmbd], ["llama.block_count", "uint32", nBlocks],
    ["llama.feed_forward_length", "uint32", nFf], ["llama.attention.head_count", "uint32", nHead],
    ["llama.attention.head_count_kv", "uint32", nHeadKv], ["llama.rope.dimension_count", "uint32", nEmbd / nHead],
    ["llama.attention.layer_norm_rms_epsilon", "float32", 1e-6], ["tokenizer.ggml.model", "string", "llama"],
    ["tokenizer.ggml.tokens", "array", { itemType: "string", items: tokens }],
    ["tokenizer.ggml.scores", "array", { itemType: "float32", items: tokens.map(() => 0) }],
    ["tokenizer.ggml.token_type", "array", { itemType: "int32", items: types }],
    ["tokenizer.ggml.bos_token_id", "uint32", 1], ["tokenizer.ggml.eos_token_id", "uint32", 2],
  ];
  return buildGguf({ metadata, tensors });
}

/** One fresh server (in this process; the probe child is its own process anyway), one timed load over HTTP. */
async function timedLoad(modelPath: string, dataDir: string, probeModels: boolean): Promise<number> {
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "inferno-check-models-"));
  const real = await realpath(modelPath);
  const id = path.basename(real, ".gguf");
  await symlink(real, path.join(modelsDir, `${id}.gguf`));
  const config = loadConfig({
    env: {},
    flags: { port: 0, gpu: "cpu", threads: 1, parallel: 1, contextSize: 512, logLevel: "silent", modelsDir, dataDir, modelRoots: [path.dirname(real)], probeModels },
  });
  const app = await buildServer(config);
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as { port: number };
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/models/${id}/load`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    const ms = performance.now() - started;
    if (res.status !== 200) throw new Error(`load of ${id} answered ${res.status}: ${await res.text()}`);
    return ms;
  } finally {
    await app.close();
    await rm(modelsDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, model: { type: "string", multiple: true }, "no-generated": { type: "boolean" } } });
  const runs = Number(values.runs);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "inferno-check-"));
  try {
    const models = [...(values.model ?? [path.resolve("../shared/models/stories260K.gguf")])];
    if (!values["no-generated"]) {
      const file = path.join(tmp, "random-0.5b-shape-f16.gguf");
      await writeFile(file, midSizeGguf());
      models.push(file);
    }
    console.log(`model-check: ${runs} runs each, threads 1, context 512, ${os.cpus()[0]?.model ?? "cpu"} x${os.availableParallelism()}, Node ${process.version}`);
    console.log("model | first load without check | first load with check | added | load with remembered verdict");
    for (const model of models) {
      const without: number[] = [];
      const withCheck: number[] = [];
      const remembered: number[] = [];
      for (let i = 0; i < runs; i++) {
        const dataDir = path.join(tmp, `data-${path.basename(model)}-${i}`);
        await mkdir(dataDir, { recursive: true });
        // Alternate which goes first, so neither always finds the page cache the other warmed.
        if (i % 2 === 0) without.push(await timedLoad(model, path.join(dataDir, "off"), false));
        withCheck.push(await timedLoad(model, dataDir, true));
        if (i % 2 === 1) without.push(await timedLoad(model, path.join(dataDir, "off"), false));
        remembered.push(await timedLoad(model, dataDir, true));
      }
      const [a, b, c] = [median(without), median(withCheck), median(remembered)];
      console.log(`${path.basename(model)} | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | +${(b - a).toFixed(0)} ms | ${c.toFixed(0)} ms`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
