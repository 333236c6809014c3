// Triton's ModelStatistics from the registry's events: every transport's inferences count, since start.
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { ModelStatistics } from "./generated/inference/ModelStatistics.js";

interface Duration {
  count: number;
  ns: number;
}
interface Counters {
  lastInference: number;
  inferences: number;
  executions: number;
  success: Duration;
  fail: Duration;
  queue: Duration;
  compute: Duration;
}

const ns = (ms: number) => Math.round(ms * 1e6);
const add = (d: Duration, ms: number) => {
  d.count++;
  d.ns += ns(ms);
};
const wire = (d: Duration) => ({ count: d.count, ns: d.ns });

/**
 * Per model: inference_count (rows of a tensor request, or one generation), execution_count (runs of the
 * model: a tensor request, or a generation's decode), success and compute times, queue waits (GGUF
 * sequences), and failures seen by the gRPC service.
 */
export class ModelStats {
  private readonly byModel = new Map<string, Counters>();
  private readonly unobserve: () => void;

  constructor(registry: ModelRegistry) {
    this.unobserve = registry.observe((event) => {
      if (event.kind === "tensor-run") {
        const c = this.counters(event.model);
        c.inferences += event.batch;
        c.executions++;
        add(c.success, event.ms);
        add(c.compute, event.ms);
        c.lastInference = Date.now();
      } else if (event.kind === "generation") {
        const c = this.counters(event.model);
        c.inferences++;
        c.executions++;
        add(c.success, event.result.totalMs);
        add(c.compute, event.result.totalMs);
        c.lastInference = Date.now();
      } else if (event.kind === "queue") {
        add(this.counters(event.model).queue, event.ms);
      }
    });
  }

  failed(model: string, ms: number): void {
    add(this.counters(model).fail, ms);
  }

  of(model: string): ModelStatistics {
    const c = this.counters(model);
    return {
      name: model,
      version: "1",
      last_inference: c.lastInference,
      inference_count: c.inferences,
      execution_count: c.executions,
      inference_stats: { success: wire(c.success), fail: wire(c.fail), queue: wire(c.queue), compute_infer: wire(c.compute) },
    };
  }

  close(): void {
    this.unobserve();
  }

  private counters(model: string): Counters {
    let c = this.byModel.get(model);
    if (!c) {
      const zero = () => ({ count: 0, ns: 0 });
      c = { lastInference: 0, inferences: 0, executions: 0, success: zero(), fail: zero(), queue: zero(), compute: zero() };
      this.byModel.set(model, c);
    }
    return c;
  }
}
