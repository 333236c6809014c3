import type { ModelType } from "../registry/model-paths.js";

/** A model held in memory by a runtime; the registry only needs these. */
export interface LoadedModel {
  readonly type: ModelType;
  readonly capabilities: readonly string[];
  /** Tokens per sequence, for text models. */
  readonly contextSize: number | null;
  /** Requests using the model now; the registry never unloads a model with requests in flight. */
  readonly inFlight: number;
  readonly loadTimeMs: number;
  /** The options it was loaded with, normalised. */
  readonly options: Readonly<Record<string, unknown>>;
  memoryUsageBytes(): number;
  /** True when the model can no longer serve (its worker died): the registry loads it again. */
  readonly broken?: boolean;
  dispose(): Promise<void>;
}
