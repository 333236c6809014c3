import { Counter, Gauge, type Registry } from "prom-client";
import { z } from "zod";
import { InfernoError } from "../errors/catalogue.js";

/** Every custom metric is exposed as `inferno_custom_<name>`, so none can shadow or clash with a built-in one. */
export const CUSTOM_PREFIX = "inferno_custom_";
const MAX_LABELS = 8;
// Prometheus names without ':' (kept for recording rules); names starting "__" are reserved for labels.
const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// No control characters: they would survive escaping but break most consumers.
const LABEL_VALUE = /^[^\p{Cc}]*$/u;

export const customMetricBody = z
  .object({
    name: z.string().min(1).max(100).regex(NAME, "must match [a-zA-Z_][a-zA-Z0-9_]* (it is exposed with the prefix inferno_custom_)"),
    value: z.number(),
    type: z.enum(["gauge", "counter"]),
    labels: z
      .record(
        z.string().max(64).regex(NAME, "label names must match [a-zA-Z_][a-zA-Z0-9_]*").refine((n) => !n.startsWith("__"), "label names starting with __ are reserved"),
        z.string().max(128).regex(LABEL_VALUE, "label values cannot hold control characters"),
      )
      .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
      .default({}),
  })
  .refine((b) => b.type !== "counter" || b.value >= 0, { message: "a counter only goes up: value is an increment and must be >= 0", path: ["value"] });

export type CustomMetricInput = z.infer<typeof customMetricBody>;

interface Entry {
  type: CustomMetricInput["type"];
  labelNames: string[];
  metric: Gauge<string> | Counter<string>;
  /** Label sets seen so far, to bound the series a metric can grow. */
  series: Set<string>;
}

const invalid = (message: string, details: Record<string, unknown>, param: string) =>
  new InfernoError("INVALID_REQUEST", message, details, { param });

/** Gauges and counters created through `POST /metrics/custom`, bounded in number and in label sets each. */
export class CustomMetrics {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly register: Registry,
    private readonly limits: { metrics: number; series: number },
  ) {}

  /** Sets a gauge or adds to a counter (creating it on first use); answers the metric's value now. */
  async record(input: CustomMetricInput) {
    const name = CUSTOM_PREFIX + input.name;
    const labelNames = Object.keys(input.labels).sort();
    const entry = this.entries.get(name) ?? this.create(name, input.type, labelNames);
    if (entry.type !== input.type) {
      throw invalid(`${name} is a ${entry.type}, not a ${input.type}`, { name, type: entry.type }, "type");
    }
    if (entry.labelNames.join(",") !== labelNames.join(",")) {
      throw invalid(`${name} has the labels [${entry.labelNames.join(", ")}]; every sample must give exactly those`, {
        name,
        label_names: entry.labelNames,
      }, "labels");
    }
    const key = JSON.stringify(labelNames.map((n) => input.labels[n]));
    if (!entry.series.has(key)) {
      if (entry.series.size >= this.limits.series) {
        throw invalid(`${name} already has ${this.limits.series} label sets, the most a custom metric may have`, { name, limit: this.limits.series }, "labels");
      }
      entry.series.add(key);
    }
    if (entry.metric instanceof Counter) entry.metric.inc(input.labels, input.value);
    else entry.metric.set(input.labels, input.value);
    const current = (await entry.metric.get()).values.find((v) => labelNames.every((n) => v.labels[n] === input.labels[n]));
    return { name, type: entry.type, labels: input.labels, value: current?.value ?? input.value };
  }

  private create(name: string, type: Entry["type"], labelNames: string[]): Entry {
    if (this.entries.size >= this.limits.metrics) {
      throw invalid(`there are already ${this.limits.metrics} custom metrics, the most allowed`, { limit: this.limits.metrics }, "name");
    }
    const config = { name, help: "Custom metric set through POST /metrics/custom", labelNames, registers: [this.register] };
    const entry: Entry = { type, labelNames, metric: type === "counter" ? new Counter(config) : new Gauge(config), series: new Set() };
    this.entries.set(name, entry);
    return entry;
  }
}
