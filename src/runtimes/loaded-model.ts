import type { Capability } from "../core/capabilities.js";
import type { MemoryUse } from "../registry/memory-budget.js";
import type { ModelType } from "../registry/model-paths.js";

/** How much work a model's engine has done: its runs, and the requests' items they carried. */
export interface ModelRuns {
  /** llama_decode calls (in-process GGUF) or onnxruntime session runs (ONNX). */
  runs: number;
  /** Tokens those decodes carried (GGUF) or requests those session runs served (ONNX); over `runs`, the mean batch. */
  items: number;
  /** Of `runs`, those made on the server's main thread (ONNX: a quick model's requests that found its worker idle). */
  mainThread?: number;
}

/** A model held in memory by a runtime; the registry only needs these. */
export interface LoadedModel {
  readonly type: ModelType;
  /** What it can do (src/core/capabilities.ts), and `capabilityNote`: why not more, when its engine narrows it. */
  readonly capabilities: readonly Capability[];
  readonly capabilityNote?: string | undefined;
  /** Tokens per sequence, for text models. */
  readonly contextSize: number | null;
  /** Requests using the model now; the registry never unloads a model with requests in flight. */
  readonly inFlight: number;
  readonly loadTimeMs: number;
  /** The options it was loaded with, normalised. */
  readonly options: Readonly<Record<string, unknown>>;
  /** RAM and GPU memory the model holds (weights, context, session), as the runtime accounts for it. */
  memoryUsage(): MemoryUse;
  /** Engine runs so far, where the runtime counts them (Prometheus: inferno_model_runs_total). */
  readonly engineRuns?: Readonly<ModelRuns>;
  /** True when the model can no longer serve (its worker died): the registry loads it again. */
  readonly broken?: boolean;
  dispose(): Promise<void>;
}
