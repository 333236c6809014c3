// gRPC through grpcio, gRPC's C core, the library Triton's Python client is built on (bench/grpcio_client.py,
// one Python process per server). grpc-js's client costs about as much CPU and time per call as the server
// does: with it alone, a bare server's figures are mostly the client's, and so were this bench's gRPC floors.
import { spawn, spawnSync, type ChildProcessByStdio } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import type { ModelInferRequest } from "../src/transports/grpc/generated/inference/ModelInferRequest.js";
import type { ModelInferResponse__Output } from "../src/transports/grpc/generated/inference/ModelInferResponse.js";
import type { ModelStreamInferResponse__Output } from "../src/transports/grpc/generated/inference/ModelStreamInferResponse.js";
import { repoRoot } from "./args.js";
import { inferenceProto } from "./grpc-bench-client.js";
import type { BenchModel } from "./onnx-inputs.js";
import type { LoadResult, WindowMark } from "./onnx-load.js";
import type { StreamTiming } from "./stats.js";
import { serverLoad, type TensorSide } from "./tensor-sides.js";
import { grpcOutput, grpcTensorRequest, type TensorSideName } from "./tensor-wire.js";
import type { TransportServer } from "./transport-server.js";

const SCRIPT = path.join(repoRoot, "bench/grpcio_client.py");

let found: string | null | undefined;

/**
 * A Python that can import grpc: $INFERNO_BENCH_PYTHON, else `python3` on the PATH, else Debian's /usr/bin/python3
 * (python3-grpcio installs there, which a python3 of pyenv's or a venv's earlier on the PATH does not see).
 * Looked up once; without one, the grpcio sides are left out, said once on stderr.
 */
export function grpcioPython(): string | undefined {
  if (found === undefined) {
    const candidates = process.env.INFERNO_BENCH_PYTHON ? [process.env.INFERNO_BENCH_PYTHON] : ["python3", "/usr/bin/python3"];
    found = candidates.find((py) => spawnSync(py, ["-c", "import grpc"], { stdio: "ignore" }).status === 0) ?? null;
    if (found === null) console.error("gRPC through grpcio: not run (no python3 that imports grpc; Debian: apt-get install python3-grpcio)");
  }
  return found ?? undefined;
}

type Line = Record<string, unknown>;

/** One grpcio client process, asked one JSON line at a time. */
export class GrpcioClient {
  private readonly lines: Line[] = [];
  private waiter: ((line: Line) => void) | undefined;
  private exited: Error | undefined;

  private constructor(private readonly proc: ChildProcessByStdio<Writable, Readable, null>, private readonly dir: string) {
    createInterface({ input: proc.stdout }).on("line", (text) => {
      const line = JSON.parse(text) as Line;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(line);
      } else this.lines.push(line);
    });
    proc.on("exit", (code) => {
      this.exited = new Error(`grpcio client exited (code ${code})`);
      this.waiter?.({ error: this.exited.message });
    });
  }

  /** A client of `address`; `request` is the ModelInferRequest that `time`, `response` and `load` send. */
  static async open(python: string, address: string, request?: Buffer): Promise<GrpcioClient> {
    const dir = mkdtempSync(path.join(os.tmpdir(), "inferno-grpcio-"));
    const file = path.join(dir, "request.bin");
    if (request) writeFileSync(file, request);
    const proc = spawn(python, [SCRIPT, address, ...(request ? [file] : [])], { stdio: ["pipe", "pipe", "inherit"] });
    const client = new GrpcioClient(proc, dir);
    const ready = await client.next();
    if (ready.ready !== true) throw new Error(`grpcio client did not start: ${JSON.stringify(ready)}`);
    return client;
  }

  private next(): Promise<Line> {
    const line = this.lines.shift();
    if (line) return Promise.resolve(line);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private async ask(cmd: Line): Promise<Line> {
    this.proc.stdin.write(JSON.stringify(cmd) + "\n");
    const answer = await this.next();
    if (typeof answer.error === "string") throw new Error(`grpcio: ${answer.error}`);
    return answer;
  }

  async time(): Promise<number> {
    return (await this.ask({ op: "time" })).ms as number;
  }

  async response(): Promise<Buffer> {
    return Buffer.from((await this.ask({ op: "output" })).response as string, "base64");
  }

  async load(clients: number, warmupMs: number, durationMs: number, onMark: (mark: WindowMark) => void): Promise<LoadResult> {
    let line = await this.ask({ op: "load", clients, warmupMs, durationMs });
    while (line.mark === "open" || line.mark === "close") {
      onMark(line.mark);
      line = await this.next();
    }
    const r = line as unknown as Omit<LoadResult, "windowMs" | "firstError"> & { firstError: string | null };
    return { ...r, windowMs: durationMs, firstError: r.firstError ?? undefined };
  }

  /**
   * `count` ModelStreamInfer generations at once, each timed as grpc-bench-client.ts's streamGeneration times one
   * (first and last token response, tokens from the final response), on grpcio's clock; and the client's CPU.
   */
  async streams(request: ModelInferRequest, count: number): Promise<{ timings: StreamTiming[]; cpuUs: number }> {
    const method = inferenceProto().inference.GRPCInferenceService.service.ModelStreamInfer;
    const b64 = method.requestSerialize(request).toString("base64");
    const answer = (await this.ask({ op: "streams", request: b64, count })) as { streams: Array<{ startMs: number; responses: Array<[number, string]> }>; cpuMs: number };
    const timings = answer.streams.map(({ startMs, responses }) => {
      const tokenAt: number[] = [];
      let final: ModelInferResponse__Output | undefined;
      for (const [at, msg] of responses) {
        const r = method.responseDeserialize(Buffer.from(msg, "base64")) as ModelStreamInferResponse__Output;
        if (r.error_message !== "") throw new Error(`ModelStreamInfer: ${r.error_message}`);
        if (r.infer_response && r.infer_response.outputs.length > 0) tokenAt.push(at);
        else final = r.infer_response ?? undefined;
      }
      const tokens = Number(final?.parameters.completion_tokens?.int64_param);
      if (!final || !Number.isFinite(tokens) || tokenAt.length === 0) throw new Error("ModelStreamInfer (grpcio) ended without its tokens and final response");
      const endMs = responses.at(-1)![0];
      return { tokens, startMs, firstTokenMs: tokenAt[0]!, lastTokenMs: tokenAt.at(-1)!, endMs, finishReason: final.parameters.finish_reason?.string_param ?? "" };
    });
    return { timings, cpuUs: answer.cpuMs * 1000 };
  }

  close(): void {
    this.proc.stdin.end();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** ModelInfer on `server` with raw contents, the same request as the grpc-js side's, from a grpcio client of its own. */
export async function grpcioSide(python: string, server: TransportServer, model: BenchModel, id: string, data: Float32Array, name: TensorSideName): Promise<TensorSide> {
  const method = inferenceProto().inference.GRPCInferenceService.service.ModelInfer;
  const client = await GrpcioClient.open(python, server.grpcAddress, method.requestSerialize(grpcTensorRequest(model, id, data)));
  return {
    name,
    rows: 1,
    output: async () => grpcOutput(model, method.responseDeserialize(await client.response()) as ModelInferResponse__Output),
    time: () => client.time(),
    throughput: (clients, warmupMs, durationMs) => serverLoad(server, id, durationMs, (onMark) => client.load(clients, warmupMs, durationMs, onMark)),
    close: () => client.close(),
  };
}

/**
 * The grpcio sides of a part, Inferno's ("grpcio") and the bare grpc-js server's ("grpcio-floor"), those of them
 * `wanted`; none without a Python that has grpc.
 */
export async function grpcioSides(server: TransportServer, floor: TransportServer, model: BenchModel, id: string, data: Float32Array, wanted: (name: TensorSideName) => boolean): Promise<TensorSide[]> {
  const names = (["grpcio", "grpcio-floor"] as const).filter(wanted);
  if (names.length === 0) return [];
  const python = grpcioPython();
  if (!python) return [];
  return Promise.all(names.map((name) => grpcioSide(python, name === "grpcio" ? server : floor, model, id, data, name)));
}
