import { OnnxTextEncoder, type OnnxPooling } from "./onnx-text.js";
import { promises as fs } from "node:fs";
import { InfernoError } from "../../errors/catalogue.js";
import { redactPaths } from "../../errors/redact-paths.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import { OnnxFormatError, readOnnxHeader, type OnnxHeader } from "../../onnx/onnx-reader.js";
import { OnnxModel } from "./onnx-model.js";
import { QUICK_RUNS, SessionClient } from "./session-client.js";

export type OnnxProvider = "cpu" | "cuda" | "auto";
export type GraphOptimization = "disabled" | "basic" | "extended" | "all";

export interface OnnxRuntimeConfig {
  provider: OnnxProvider;
  intraOpThreads: number;
  interOpThreads: number;
  graphOptimization: GraphOptimization;
  maxBatchSize: number;
  maxQueueDelayMicros: number;
}

/** Options an ONNX load accepts, from `POST /models/{id}/load` or a registration. */
export interface OnnxLoadOptions {
  max_batch_size?: number;
  max_queue_delay_us?: number;
  /** A text encoder's pooling, instead of its `1_Pooling/config.json` (onnx-text.ts). */
  pooling?: OnnxPooling;
}

/** Reads and checks the file's protobuf structure in JS, so a malformed file is refused before onnxruntime parses it. */
export async function inspectOnnx(filePath: string): Promise<OnnxHeader> {
  try {
    return await readOnnxHeader(filePath);
  } catch (err) {
    if (err instanceof OnnxFormatError) {
      throw new InfernoError("INVALID_MODEL_FILE", `not a valid ONNX file: ${err.message}`, { reason: err.reason });
    }
    throw err;
  }
}

const SESSION_OVERHEAD_BYTES = 10 * 1024 * 1024;

/**
 * Memory an ONNX session takes, from its file size. Measured on this project's models (RSS after the load,
 * onnxruntime-node 1.30, CPU provider): about 8.5 MiB per session (its worker thread and onnxruntime's
 * session state) plus 0.4x (a float model) to 2.5x (an int8 one, whose optimised graph holds converted
 * weights) its file size; 3x is the margin. Running adds activation memory on top, growing with the batch.
 * The first model also loads onnxruntime itself (about 40 MiB, once per process): not counted.
 */
export function onnxMemoryEstimate(fileSize: number): MemoryUse {
  // A model that may run on the main thread too (mayRunOnMainThread) holds a second session there.
  const sessions = mayRunOnMainThread(fileSize) ? 2 : 1;
  return { ram: SESSION_OVERHEAD_BYTES + sessions * 3 * fileSize, vram: 0 };
}

/** Whether a model may get a session on the main thread for its quick runs (QUICK_RUNS); INFERNO_ONNX_MAIN_THREAD=0 turns it off. */
export const mayRunOnMainThread = (fileSize: number) => process.env.INFERNO_ONNX_MAIN_THREAD !== "0" && fileSize <= QUICK_RUNS.maxFileBytes;

/** Loads `.onnx` files into sessions on worker threads, with the configured execution provider and threads. */
export class OnnxRuntime {
  constructor(private readonly config: OnnxRuntimeConfig) {}

  async estimate(filePath: string): Promise<MemoryUse> {
    return onnxMemoryEstimate((await fs.stat(filePath)).size);
  }

  async load(filePath: string, options: OnnxLoadOptions): Promise<OnnxModel> {
    const header = await inspectOnnx(filePath);
    const started = performance.now();
    const providers = this.config.provider === "cpu" ? ["cpu"] : ["cuda", "cpu"];
    const sessionOptions = {
      executionProviders: providers,
      intraOpNumThreads: this.config.intraOpThreads,
      interOpNumThreads: this.config.interOpThreads,
      graphOptimizationLevel: this.config.graphOptimization,
    };
    let opened;
    try {
      // On a GPU a second session would hold the weights twice in its memory: the main thread runs CPU sessions only.
      opened = await SessionClient.open(filePath, sessionOptions, this.config.provider === "cpu" && mayRunOnMainThread(header.fileSize));
    } catch (err) {
      const message = redactPaths((err as Error).message);
      if (this.config.provider === "cuda" || !/cuda/i.test(message)) {
        // The file passed the JS check, so what onnxruntime refuses now is the graph itself (types,
        // shapes, unknown ops), unless it is the machine: memory, or a provider that would not start.
        const code = /memory|alloc|bad_alloc|provider|cuda|cudnn|tensorrt/i.test(message) ? "MODEL_LOAD_FAILED" : "INVALID_MODEL_FILE";
        throw new InfernoError(code, `onnxruntime could not load the model: ${message}`, undefined, { cause: err });
      }
      // "auto": no CUDA provider on this host; fall back to the CPU.
      opened = await SessionClient.open(filePath, { ...sessionOptions, executionProviders: ["cpu"] }, mayRunOnMainThread(header.fileSize));
    }
    const model = new OnnxModel(opened.client, opened, {
      maxBatchSize: options.max_batch_size ?? this.config.maxBatchSize,
      maxQueueDelayMicros: options.max_queue_delay_us ?? this.config.maxQueueDelayMicros,
      memory: onnxMemoryEstimate(header.fileSize),
      loadTimeMs: performance.now() - started,
      options: {
        provider: this.config.provider,
        intra_op_threads: this.config.intraOpThreads,
        max_batch_size: options.max_batch_size ?? this.config.maxBatchSize,
        max_queue_delay_us: options.max_queue_delay_us ?? this.config.maxQueueDelayMicros,
        ...(options.pooling ? { pooling: options.pooling } : {}),
      },
    });
    try {
      const text = await OnnxTextEncoder.open(filePath, header, (inputs, fetches, signal) => model.infer(inputs, fetches, signal), options.pooling);
      if (text) model.attachText(text);
    } catch (err) {
      await model.dispose();
      throw err;
    }
    return model;
  }
}
