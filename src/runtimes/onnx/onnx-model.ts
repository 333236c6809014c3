import type { Capability } from "../../core/capabilities.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { MemoryUse } from "../../registry/memory-budget.js";
import type { LoadedModel, ModelRuns } from "../loaded-model.js";
import { DynamicBatcher, type BatchItem } from "./dynamic-batcher.js";
import type { OnnxTextEncoder } from "./onnx-text.js";
import type { SessionClient } from "./session-client.js";
import type { WireTensor, WireValueMetadata } from "./session-protocol.js";
import type { DecodedTensor, TensorSpec } from "./tensor-codec.js";
import { isElementType } from "./tensor-types.js";

export interface OnnxModelSettings {
  /** Rows per merged run; 1 turns dynamic batching off. */
  maxBatchSize: number;
  maxQueueDelayMicros: number;
  /** The estimate made before loading (onnxruntime does not report what its session and arena hold). */
  memory: MemoryUse;
  loadTimeMs: number;
  options: Record<string, unknown>;
}

/** Every output of a run, by name. */
export type TensorMap = Record<string, WireTensor>;
type Item = BatchItem<DecodedTensor> & { fetches: string[] };

const isDynamic = (dim: number | string | undefined) => typeof dim === "string" || dim === -1;

function specsOf(meta: WireValueMetadata[]): TensorSpec[] {
  return meta.flatMap((m) => (m.isTensor && isElementType(m.type) ? [{ name: m.name, type: m.type, shape: m.shape ?? [] }] : []));
}

/** A loaded ONNX model: its session on a worker thread, and a dynamic batcher in front of it when the model allows. */
export class OnnxModel implements LoadedModel {
  readonly type = "onnx" as const;
  /** Its text side, when it is a sentence encoder or cross-encoder with a tokenizer (onnx-text.ts). */
  private textEncoder: OnnxTextEncoder | undefined;
  readonly contextSize = null;
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  readonly loadTimeMs: number;
  readonly options: Readonly<Record<string, unknown>>;
  private active = 0;
  private readonly counted: ModelRuns = { runs: 0, items: 0 };
  private readonly batcher: DynamicBatcher<DecodedTensor, TensorMap> | undefined;

  constructor(
    private readonly session: SessionClient,
    meta: { inputs: WireValueMetadata[]; outputs: WireValueMetadata[] },
    private readonly settings: OnnxModelSettings,
  ) {
    this.inputs = specsOf(meta.inputs);
    this.outputs = specsOf(meta.outputs);
    this.loadTimeMs = settings.loadTimeMs;
    this.options = Object.freeze({ ...settings.options, dynamic_batching: this.batchable });
    if (this.batchable) {
      this.batcher = new DynamicBatcher<DecodedTensor, TensorMap>({
        maxBatchSize: settings.maxBatchSize,
        maxQueueDelayMicros: settings.maxQueueDelayMicros,
        // One full batch waits at the session's thread while one runs, so that thread never idles under load.
        fullAhead: 1,
        keyOf: (item) => batchKey(item as Item),
        run: (items) => this.runBatch(items as Item[]),
      });
    }
  }

  get capabilities(): readonly Capability[] {
    return this.textEncoder ? ["tensor-inference", this.textEncoder.facts.kind] : ["tensor-inference"];
  }

  get text(): OnnxTextEncoder | undefined {
    return this.textEncoder;
  }

  attachText(encoder: OnnxTextEncoder): void {
    this.textEncoder = encoder;
  }

  /** Batching needs axis 0 to be dynamic on every input and output (the models' batch axis). */
  get batchable(): boolean {
    return (
      this.settings.maxBatchSize > 1 &&
      this.inputs.length > 0 &&
      [...this.inputs, ...this.outputs].every((t) => t.shape.length > 0 && isDynamic(t.shape[0]))
    );
  }

  get inFlight(): number {
    return this.active;
  }

  get broken(): boolean {
    return !this.session.alive;
  }

  /** Session runs so far (a merged batch counts once) and the requests they served: batching at work. */
  get engineRuns(): Readonly<ModelRuns> {
    return { ...this.counted, mainThread: this.session.mainThreadRuns };
  }

  get queued(): number {
    return this.batcher?.queued ?? 0;
  }

  /** The load-time estimate (see onnxMemoryEstimate): onnxruntime does not report its arena. */
  memoryUsage(): MemoryUse {
    return this.settings.memory;
  }

  /** Runs one request; concurrent same-shaped requests are merged into one run when the model allows. */
  async infer(inputs: Record<string, DecodedTensor>, fetches: string[], signal: AbortSignal): Promise<TensorMap> {
    this.active++;
    try {
      signal.throwIfAborted();
      const rows = Object.values(inputs).map((t) => t.dims[0]);
      const batchSize = rows[0];
      if (this.batcher && batchSize !== undefined && batchSize > 0 && rows.every((r) => r === batchSize)) {
        const item: Item = { inputs, batchSize, fetches };
        return await this.batcher.submit(item, signal);
      }
      return await this.run(inputs, fetches);
    } finally {
      this.active--;
    }
  }

  /** One merged run; the session's worker joins the inputs and cuts the outputs (session-worker.ts). */
  private async runBatch(items: Item[]): Promise<TensorMap[]> {
    if (items.length === 1) return [await this.run(items[0]!.inputs, items[0]!.fetches)];
    return this.guard(items.length, async () => (await this.session.runBatch(items.map((i) => i.inputs as Record<string, WireTensor>), items[0]!.fetches)).outputs);
  }

  private run(inputs: Record<string, DecodedTensor>, fetches: string[]): Promise<TensorMap> {
    return this.guard(1, async () => (await this.session.run(inputs as Record<string, WireTensor>, fetches)).outputs);
  }

  private async guard<T>(requests: number, run: () => Promise<T>): Promise<T> {
    this.counted.runs++;
    this.counted.items += requests;
    try {
      return await run();
    } catch (err) {
      if (err instanceof InfernoError) throw err;
      throw new InfernoError("INFERENCE_FAILED", `onnxruntime could not run the model: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  async dispose(): Promise<void> {
    await this.batcher?.close();
    await this.session.dispose();
  }
}

/** Requests batch together only when all but axis 0 agrees: dims, types and the outputs they want. */
function batchKey(item: Item): string {
  const parts = Object.keys(item.inputs)
    .sort()
    .map((name) => {
      const t = item.inputs[name]!;
      return `${name}:${t.type}:${t.dims.slice(1).join("x")}`;
    });
  return `${parts.join("|")}>${item.fetches.join(",")}`;
}
