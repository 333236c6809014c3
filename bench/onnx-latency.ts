// Sequential latency: one client, one request at a time, against raw session.run on the same input.
import { Buffer } from "node:buffer";
import type http from "node:http";
import { httpPost, keepAliveAgent } from "./onnx-http.js";
import { machineBusyMs } from "./onnx-machine.js";
import { prepareRequest, responseOutput, sampleInput, type BenchModel, type InputForm, type PreparedRequest } from "./onnx-inputs.js";
import type { RawSession } from "./onnx-raw.js";
import type { LatencyScenario, Side } from "./onnx-report.js";
import type { OnnxBenchServer } from "./onnx-server.js";
import { maxAbsDiff } from "./stats.js";

const FORMS: InputForm[] = ["json", "b64", "kserve"];
/** Untimed requests per side before latency is timed (JIT, connection setup, onnxruntime's first runs). */
const LATENCY_WARMUP = 20;

async function post(url: string, body: Buffer): Promise<string> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

async function timePost(url: string, body: Buffer): Promise<number> {
  const started = performance.now();
  await post(url, body);
  return performance.now() - started;
}

async function timeNodeHttp(agent: http.Agent, url: string, body: Buffer): Promise<number> {
  const started = performance.now();
  const res = await httpPost(agent, url, body);
  if (res.status !== 200) throw new Error(`POST ${url}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
  return performance.now() - started;
}

/** Sequential requests, the sides interleaved (and their order rotated) so that drift hits them all alike. */
export async function latency(model: BenchModel, raw: RawSession, server: OnnxBenchServer, n: number): Promise<{ scenario: LatencyScenario; requests: PreparedRequest[]; input: Float32Array }> {
  const input = sampleInput(model);
  const expected = await raw.run(input, model.dims);
  const requests = FORMS.map((form) => prepareRequest(model, model.name, input, form));
  const diff: LatencyScenario["maxAbsDiff"] = {};
  const responseBytes = new Map<Side, number>();
  for (const req of requests) {
    const text = await post(server.url + req.path, req.body);
    diff[req.form] = maxAbsDiff(responseOutput(model, req.form, text), expected);
    responseBytes.set(req.form, Buffer.byteLength(text));
  }
  const b64 = requests.find((r) => r.form === "b64")!;
  const agent = keepAliveAgent(1);
  const sides: Array<[Side, () => Promise<number>]> = [
    ["raw", () => raw.time(input, model.dims)],
    ...requests.map((r): [Side, () => Promise<number>] => [r.form, () => timePost(server.url + r.path, r.body)]),
    ["b64-node-http", () => timeNodeHttp(agent, server.url + b64.path, b64.body)],
  ];
  const samples = new Map<Side, number[]>(sides.map(([side]) => [side, []]));
  const started = { at: performance.now(), cpu: process.cpuUsage(), busy: machineBusyMs() };
  try {
    for (let i = 0; i < Math.min(LATENCY_WARMUP, n); i++) for (const [, fn] of sides) await fn();
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < sides.length; k++) {
        const [side, fn] = sides[(i + k) % sides.length]!;
        samples.get(side)!.push(await fn());
      }
    }
  } finally {
    agent.destroy();
  }
  const used = process.cpuUsage(started.cpu);
  const busy = machineBusyMs();
  const otherCpuPct =
    started.busy === null || busy === null
      ? null
      : ((busy - started.busy - (used.user + used.system) / 1000) / (performance.now() - started.at)) * 100;
  const scenario: LatencyScenario = {
    model: model.name,
    requests: n,
    sides: sides.map(([side]) => ({
      side,
      requestBytes: requests.find((r) => r.form === (side === "b64-node-http" ? "b64" : side))?.body.length ?? null,
      responseBytes: responseBytes.get(side === "b64-node-http" ? "b64" : side) ?? null,
      samplesMs: samples.get(side)!,
    })),
    maxAbsDiff: diff,
    otherCpuPct,
  };
  return { scenario, requests, input };
}
