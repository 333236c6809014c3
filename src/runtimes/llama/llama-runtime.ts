import { ggufCapabilities, type GgufCapabilityFacts, type ModelCapabilities, type Mode } from "../../core/capabilities.js";
import { readFileSync } from "node:fs";
import os from "node:os";
import { getLlama, GgufInsights, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaContext } from "node-llama-cpp";
import type { WaitingMemory } from "../../scheduler/resource-pool.js";
import type { Logger } from "../../core/logger.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import { GgufFormatError, readGgufHeader, summarizeGguf, type GgufSummary } from "../../gguf/gguf-reader.js";
import { sequenceOrderStrategy } from "./batch-order.js";
import { sampleTogether } from "./batch-sampling.js";
import { splitThreadsByBatch, type ThreadCaps } from "./batch-threads.js";
import { tuneThreads } from "./thread-tuning.js";
import { enableNativeLoops, streamIntervalFor } from "./native-generation.js";
import { fileIdentity, GgufProbe } from "./gguf-probe.js";
import { findLlamaServer } from "../llama-server/llama-server-bin.js";
import { LlamaServerModel } from "../llama-server/llama-server-model.js";
import { LlamaServerProcess } from "../llama-server/llama-server-process.js";
import type { TextModel } from "./gguf-text-model.js";
import { LlamaTextModel } from "./llama-text-model.js";

export type GpuSetting = "auto" | "cpu" | "cuda" | "vulkan" | "metal";
/** What runs a GGUF model: node-llama-cpp in this process (default), or a llama-server child process. */
export type GgufEngine = "node-llama-cpp" | "llama-server";

export interface LlamaRuntimeConfig {
  gpu: GpuSetting;
  /** llama.cpp threads for one-token batches, and for larger ones (see batch-threads.ts). */
  threads: number;
  batchThreads: number;
  /** Measure fewer threads for a small model on the CPU at load and keep the fastest (thread-tuning.ts). */
  tuneThreads?: boolean;
  /** Tokens of a stream on the native loop are posted in groups at most this often (ms; 0: each at once; "auto": streamIntervalFor). */
  streamIntervalMs?: number | "auto";
  parallel: number;
  contextSize: number;
  batchSize: number;
  gpuLayers: "auto" | "max" | number;
  /** Requests that may wait for a sequence per model, and for how long (ms). */
  queueSize: number;
  queueTimeoutMs: number;
  /** The memory bound that the waiting requests of every model share. */
  queueMemory?: WaitingMemory;
  /** Open each new GGUF file in a child process first (see GgufProbe); verdicts are kept in dataDir. */
  probeModels?: boolean;
  dataDir?: string;
  /** The engine for models whose registration does not choose one. */
  engine?: GgufEngine;
  /** The llama-server binary for that engine; else INFERNO_LLAMA_SERVER or the build script's cached one. */
  llamaServer?: string;
}

/** Options a GGUF load accepts, from `POST /models/{id}/load` or a registration. */
export interface LlamaLoadOptions {
  gpu_layers?: "auto" | "max" | number;
  context_size?: number;
  batch_size?: number;
  parallel?: number;
  chat_template?: string;
  engine?: GgufEngine;
  /** Narrows the model to one use (src/core/capabilities.ts). */
  mode?: Mode;
}

/** A bad chat_template fails the load, not the first chat. */
async function checkChatTemplate<M extends TextModel>(loaded: M): Promise<M> {
  try {
    void loaded.chat;
  } catch (err) {
    await loaded.dispose();
    throw err;
  }
  return loaded;
}

/** Validates the GGUF header in JS so that a corrupt file is refused before native code trusts it. */
export async function inspectGguf(filePath: string): Promise<GgufSummary> {
  try {
    return summarizeGguf(await readGgufHeader(filePath));
  } catch (err) {
    if (err instanceof GgufFormatError) {
      throw new InfernoError("INVALID_MODEL_FILE", `not a valid GGUF file: ${err.message}`, { reason: err.reason });
    }
    throw err;
  }
}

/** node-llama-cpp's version, which pins the llama.cpp it ships: a new one may judge a file differently. */
function nodeLlamaCppVersion(): string {
  try {
    const pkg = new URL("../package.json", import.meta.resolve("node-llama-cpp"));
    return String((JSON.parse(readFileSync(pkg, "utf8")) as { version?: unknown }).version);
  } catch {
    return "unknown";
  }
}

/** One node-llama-cpp `Llama` per process, created on first use; loads GGUF files into LlamaTextModels. */
export class LlamaRuntime {
  private llama: Promise<Llama> | undefined;
  private readonly probe: GgufProbe | undefined;
  private readonly summaries = new Map<string, { identity: string; summary: GgufSummary }>();

  constructor(
    private readonly config: LlamaRuntimeConfig,
    private readonly log: Logger,
  ) {
    if (config.probeModels !== false) {
      this.probe = new GgufProbe({ dataDir: config.dataDir, log, runtimeVersion: `node-llama-cpp@${nodeLlamaCppVersion()}` });
    }
  }

  /**
   * The header check (`inspectGguf`), run once per file identity: registration, the check, the estimate
   * and the load all ask for it, and a large vocabulary makes each parse cost tens of milliseconds.
   */
  async inspect(filePath: string): Promise<GgufSummary> {
    const identity = await fileIdentity(filePath);
    const hit = this.summaries.get(filePath);
    if (hit?.identity === identity) return hit.summary;
    const summary = await inspectGguf(filePath);
    this.summaries.set(filePath, { identity, summary });
    return summary;
  }

  /**
   * Checks that llama.cpp can open the file without risking this process: the JS header check, then
   * (once per file) a load in a child process. Throws INVALID_MODEL_FILE.
   */
  async verify(filePath: string): Promise<GgufSummary> {
    const summary = await this.inspect(filePath);
    // This process's own backend starts while the check runs in its child: the load needs both.
    this.getLlama().catch(() => undefined);
    await this.probe?.check(filePath);
    return summary;
  }

  getLlama(): Promise<Llama> {
    this.llama ??= getLlama({
      gpu: this.config.gpu === "cpu" ? false : this.config.gpu,
      maxThreads: Math.max(this.config.threads, this.config.batchThreads),
      build: "never",
      usePrebuiltBinaries: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => this.nativeLog(level, message),
    }).then((llama) => {
      this.log.info(
        { gpu: llama.gpu, threads: this.config.threads, batchThreads: this.config.batchThreads, uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? "4" },
        "llama.cpp backend ready",
      );
      return llama;
    });
    this.llama.catch(() => (this.llama = undefined));
    return this.llama;
  }

  /** Context settings for a load: the request's options over the server's, the context capped at the trained size. */
  private contextPlan(summary: GgufSummary, options: LlamaLoadOptions) {
    const contextSize = options.context_size ?? Math.min(this.config.contextSize, summary.context_length ?? this.config.contextSize);
    return {
      contextSize,
      parallel: options.parallel ?? this.config.parallel,
      batchSize: options.batch_size ?? Math.min(this.config.batchSize, contextSize),
    };
  }

  /**
   * The memory a load with these options will take, from node-llama-cpp's GGUF insights (weights plus
   * the context's KV cache and compute buffers), split between RAM and GPU memory by the layers offloaded.
   */
  async estimate(filePath: string, options: LlamaLoadOptions): Promise<MemoryUse> {
    const summary = await this.inspect(filePath);
    const llama = await this.getLlama();
    const insights = await GgufInsights.from(await readGgufFileInfo(filePath, { sourceType: "filesystem", logWarnings: false }), llama);
    const { contextSize, parallel, batchSize } = this.contextPlan(summary, options);
    const gpuLayers = await this.resolveGpuLayers(llama, insights, options.gpu_layers ?? this.config.gpuLayers);
    const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers });
    const context = await insights.estimateContextResourceRequirementsV2({
      contextSize, sequences: parallel, batchSize, modelGpuLayers: gpuLayers,
    });
    return { ram: weights.cpuRam + context.cpuRam, vram: weights.gpuVram + context.gpuVram };
  }

  /** Free GPU memory as llama.cpp sees it; null on a CPU-only backend. */
  async freeVram(): Promise<number | null> {
    const llama = await this.getLlama();
    return llama.gpu === false ? null : (await llama.getVramState()).free;
  }

  private async resolveGpuLayers(llama: Llama, insights: GgufInsights, setting: "auto" | "max" | number): Promise<number> {
    if (llama.gpu === false) return 0;
    if (setting === "max") return insights.totalLayers;
    if (typeof setting === "number") return Math.min(setting, insights.totalLayers);
    // What node-llama-cpp's "auto" will pick for the VRAM free now; when nothing fits, it all stays in RAM.
    return insights.configurationResolver.resolveModelGpuLayersV2("auto").then((r) => r.gpuLayers, () => 0);
  }

  /**
   * What a model loaded from a file with these header facts and options can do: the file and `mode`
   * decide, and the llama-server engine serves text generation only.
   */
  capabilities(facts: GgufCapabilityFacts, options: LlamaLoadOptions): ModelCapabilities {
    const onServer = (options.engine ?? this.config.engine) === "llama-server";
    const notes: string[] = [];
    if (options.mode && ggufCapabilities(facts, options.mode).length === 0) {
      notes.push(`mode ${options.mode} is not among what its file can do (${ggufCapabilities(facts, undefined).join(", ")})`);
    }
    if (facts.pooling_type === "rank" && facts.has_classifier !== true) notes.push("its file declares rank pooling but has no classification head to rank with");
    if (onServer) notes.push("it runs on the llama-server engine, which serves text generation only; load it with engine node-llama-cpp for more");
    return { capabilities: ggufCapabilities(facts, options.mode, onServer), note: notes.length ? notes.join("; ") : undefined };
  }

  async load(filePath: string, options: LlamaLoadOptions, signal?: AbortSignal): Promise<TextModel> {
    if ((options.engine ?? this.config.engine) === "llama-server") return this.loadOnServer(filePath, options, signal);
    const summary = await this.verify(filePath);
    const started = performance.now();
    const llama = await this.getLlama();
    const { contextSize, parallel, batchSize } = this.contextPlan(summary, options);
    const gpuLayers = llama.gpu === false ? 0 : (options.gpu_layers ?? this.config.gpuLayers);
    let model;
    try {
      model = await llama.loadModel({ modelPath: filePath, gpuLayers, ...(signal ? { loadSignal: signal } : {}) });
    } catch (err) {
      throw new InfernoError("MODEL_LOAD_FAILED", `could not load model: ${(err as Error).message}`, undefined, { cause: err });
    }
    try {
      let created: LlamaContext | undefined;
      const context = await model.createContext({
        contextSize,
        sequences: parallel,
        batchSize,
        batching: { itemPrioritizationStrategy: sequenceOrderStrategy(() => created) },
        threads: this.config.batchThreads,
        ...(signal ? { createSignal: signal } : {}),
      });
      created = context;
      const engineRuns = { runs: 0, items: 0 };
      const caps = splitThreadsByBatch(context, this.config.threads, engineRuns);
      sampleTogether(context);
      // Read as each native loop starts, so that it follows the thread counts measured below.
      const setting = this.config.streamIntervalMs ?? 0;
      const cores = os.availableParallelism();
      const interval = () => streamIntervalFor(setting, { gpuLayers: model.gpuLayers, decodeThreads: caps?.one ?? context.currentThreads, cores });
      // Without native loops (an addon without the patch) nothing is grouped, and the model's options say 0.
      const streamInterval = enableNativeLoops(context, interval) ? interval : () => 0;
      const weights = await model.fileInsights.estimateModelResourceRequirementsV2({ gpuLayers: model.gpuLayers });
      const loaded = new LlamaTextModel(model, context, {
        threads: this.config.batchThreads,
        engineRuns,
        ...(caps ? { caps } : {}),
        streamInterval,
        weights: { ram: weights.cpuRam, vram: weights.gpuVram },
        queue: this.queueLimits(),
        loadTimeMs: performance.now() - started,
        capabilities: this.capabilities(summary, { ...options, engine: "node-llama-cpp" }),
        options: {
          engine: "node-llama-cpp", gpu_layers: model.gpuLayers, context_size: context.contextSize, batch_size: context.batchSize, parallel,
          ...(options.chat_template ? { chat_template: options.chat_template } : {}),
          ...(options.mode ? { mode: options.mode } : {}),
        },
      });
      await checkChatTemplate(loaded);
      if (caps && this.config.tuneThreads && model.gpuLayers === 0 && loaded.capabilities.includes("text-generation")) await this.tune(loaded, caps, filePath, signal);
      return loaded;
    } catch (err) {
      await model.dispose();
      if (err instanceof InfernoError) throw err;
      const message = (err as Error).message;
      const code = /memory|VRAM|RAM/i.test(message) ? "INSUFFICIENT_MEMORY" : "MODEL_LOAD_FAILED";
      throw new InfernoError(code, `could not create a context: ${message}`, { context_size: contextSize, parallel }, { cause: err });
    }
  }

  /** Runs the model on the fastest thread counts measured (thread-tuning.ts); the load's time includes it. */
  private async tune(loaded: LlamaTextModel, caps: ThreadCaps, filePath: string, signal?: AbortSignal): Promise<void> {
    const initial = { ...caps };
    try {
      const tuning = await loaded.warmUp(() => tuneThreads(loaded, caps, os.availableParallelism(), signal ?? new AbortController().signal));
      loaded.threadTuning = tuning;
      this.log.info({ model: filePath, ...tuning }, tuning.skipped ? "llama.cpp threads kept" : "llama.cpp threads measured");
    } catch (err) {
      signal?.throwIfAborted();
      Object.assign(caps, initial);
      this.log.warn({ model: filePath, err }, "llama.cpp threads not measured; the configured ones stay");
    }
  }

  private queueLimits() {
    return {
      maxWaiting: this.config.queueSize,
      waitTimeoutMs: this.config.queueTimeoutMs,
      ...(this.config.queueMemory ? { memory: this.config.queueMemory } : {}),
    };
  }

  /**
   * The llama-server engine: the tokenizer and chat template from a vocabulary-only node-llama-cpp model
   * in this process, the weights and decoding in a llama-server child on a Unix socket.
   */
  private async loadOnServer(filePath: string, options: LlamaLoadOptions, signal?: AbortSignal): Promise<LlamaServerModel> {
    const summary = await this.verify(filePath);
    const started = performance.now();
    const bin = this.config.llamaServer ?? findLlamaServer({})?.path;
    if (!bin) {
      throw new InfernoError("MODEL_LOAD_FAILED", "the llama-server engine needs llama.cpp's llama-server: run npm run build:llama-server, or set llamaServer (INFERNO_LLAMA_SERVER) to its path");
    }
    const llama = await this.getLlama();
    const { contextSize, parallel, batchSize } = this.contextPlan(summary, options);
    const gpuLayers = llama.gpu === false ? 0 : (options.gpu_layers ?? this.config.gpuLayers);
    const memory = await this.estimate(filePath, options);
    let vocabulary;
    try {
      vocabulary = await llama.loadModel({ modelPath: filePath, vocabOnly: true });
    } catch (err) {
      throw new InfernoError("MODEL_LOAD_FAILED", `could not load model: ${(err as Error).message}`, undefined, { cause: err });
    }
    let server;
    try {
      server = await LlamaServerProcess.start({
        bin, modelPath: filePath, threads: this.config.threads, batchThreads: this.config.batchThreads,
        parallel, contextSize, batchSize, gpuLayers, log: this.log, ...(signal ? { signal } : {}),
      });
    } catch (err) {
      await vocabulary.dispose();
      throw err;
    }
    this.log.info({ llamaServerPid: server.pid, model: filePath }, "llama-server engine ready");
    const loaded = new LlamaServerModel(vocabulary, server, {
      contextSize, parallel, memory,
      queue: this.queueLimits(),
      loadTimeMs: performance.now() - started,
      capabilities: this.capabilities(summary, { ...options, engine: "llama-server" }),
      options: {
        engine: "llama-server", gpu_layers: gpuLayers, context_size: contextSize, batch_size: batchSize, parallel,
        ...(options.chat_template ? { chat_template: options.chat_template } : {}),
        ...(options.mode ? { mode: options.mode } : {}),
      },
    });
    return checkChatTemplate(loaded);
  }

  async dispose(): Promise<void> {
    this.probe?.dispose();
    const llama = await this.llama?.catch(() => undefined);
    await llama?.dispose();
    this.llama = undefined;
  }

  private nativeLog(level: LlamaLogLevel, message: string): void {
    const text = message.trim();
    if (!text) return;
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) this.log.error({ native: true }, text);
    else if (level === LlamaLogLevel.warn) this.log.warn({ native: true }, text);
    else this.log.debug({ native: true }, text);
  }
}
