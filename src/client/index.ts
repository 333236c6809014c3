// The TypeScript client of Inferno's IPC protocol (docs/ipc.md): `import { connect } from "inferno/client"`.
// One Unix-socket connection carries many requests at once; streamed generations are async iterables;
// an AbortSignal cancels a request on the server; a closed connection is reopened on the next call.
import { connect as netConnect, type Socket } from "node:net";
import { decodeFrame, encodeFrame, FrameReader } from "../transports/ipc/frames.js";

export interface ConnectOptions {
  /** API key or JWT, sent in `hello` (needed when the server has auth on). */
  token?: string;
  /** Largest frame accepted from the server (default 64 MiB). */
  maxFrameBytes?: number;
}

/** A tensor on the wire: raw little-endian row-major bytes (in answers, a view of the received frame at any offset: copy before viewing as a wider type), or a list of strings for BYTES. */
export interface Tensor {
  datatype: string;
  shape: number[];
  data: Uint8Array | string[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface GenerateOptions {
  prompt?: string;
  messages?: Array<{ role: "system" | "user" | "assistant"; content: string }>;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  stop?: string | string[];
  ignore_eos?: boolean;
  min_tokens?: number;
  signal?: AbortSignal;
}

export interface Generation {
  text: string;
  finish_reason: "stop" | "length" | "cancelled";
  usage: Usage;
}

/** A streamed generation: iterate for the text pieces; `result` resolves once it is done. */
export interface GenerationStream extends AsyncIterable<string> {
  result: Promise<Omit<Generation, "text">>;
}

/** A coded error from the server (the REST error catalogue's codes), or from the connection. */
export class InfernoIpcError extends Error {
  constructor(readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = "InfernoIpcError";
  }
}

interface Pending {
  resolve(frame: Record<string, unknown>): void;
  reject(err: Error): void;
  /** Token frames of a streamed generation. */
  onEvent?(frame: Record<string, unknown>): void;
}

const toBytes = (data: Uint8Array | ArrayBufferView | string[]): Uint8Array | string[] =>
  Array.isArray(data) ? data : data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/** One connection; the client opens a new one when it is gone. */
class Connection {
  readonly pending = new Map<number, Pending>();
  private readonly reader: FrameReader;
  closed = false;

  constructor(readonly socket: Socket, maxFrameBytes: number) {
    this.reader = new FrameReader(maxFrameBytes);
    socket.on("data", (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = this.reader.push(chunk);
      } catch (err) {
        return this.close(new InfernoIpcError("PAYLOAD_TOO_LARGE", (err as Error).message));
      }
      for (const frame of frames) this.onFrame(decodeFrame(frame) as Record<string, unknown>);
    });
    socket.on("error", (err) => this.close(new InfernoIpcError("SERVICE_UNAVAILABLE", `IPC connection failed: ${err.message}`)));
    socket.on("close", () => this.close(new InfernoIpcError("SERVICE_UNAVAILABLE", "the IPC connection closed")));
  }

  private onFrame(frame: Record<string, unknown>): void {
    const id = frame.id;
    if (typeof id !== "number") {
      // A connection-level error: the server closes the connection after it.
      const e = frame.error as { code?: string; message?: string } | undefined;
      return this.close(new InfernoIpcError(e?.code ?? "INTERNAL_ERROR", e?.message ?? "the server closed the connection"));
    }
    const p = this.pending.get(id);
    if (!p) return;
    if (frame.event === "token") return p.onEvent?.(frame);
    this.pending.delete(id);
    const e = frame.error as { code: string; message: string; details?: Record<string, unknown> } | undefined;
    if (e) p.reject(new InfernoIpcError(e.code, e.message, e.details));
    else p.resolve(frame);
  }

  close(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

export class InfernoClient {
  private connection: Connection | undefined;
  private opening: Promise<Connection> | undefined;
  private nextId = 1;

  constructor(readonly socketPath: string, private readonly options: ConnectOptions = {}) {}

  /** The open connection, or a new one (with its hello) when there is none. */
  private open(): Promise<Connection> {
    if (this.connection && !this.connection.closed) return Promise.resolve(this.connection);
    this.opening ??= new Promise<Connection>((resolve, reject) => {
      const socket = netConnect(this.socketPath);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        const c = new Connection(socket, this.options.maxFrameBytes ?? 64 * 1024 * 1024);
        this.connection = c;
        this.send(c, { op: "hello", version: 1, ...(this.options.token ? { token: this.options.token } : {}) }).then(() => resolve(c), reject);
      });
    }).finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private send(c: Connection, request: Record<string, unknown>, onEvent?: Pending["onEvent"], signal?: AbortSignal): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new InfernoIpcError("CANCELLED", "the request was aborted before it was sent"));
      const onAbort = () => void c.socket.write(encodeFrame({ id: this.nextId++, op: "cancel", target: id }));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => signal?.removeEventListener("abort", onAbort);
      c.pending.set(id, {
        resolve: (f) => (done(), resolve(f)),
        reject: (e) => (done(), reject(e)),
        ...(onEvent ? { onEvent } : {}),
      });
      c.socket.write(encodeFrame({ ...request, id }));
    });
  }

  private async call(request: Record<string, unknown>, signal?: AbortSignal): Promise<any> {
    const frame = await this.send(await this.open(), request, undefined, signal);
    return frame.result;
  }

  health(): Promise<{ status: string; version: string; protocol: number; models_loaded: number }> {
    return this.call({ op: "health" });
  }

  models(): Promise<{ models: Array<Record<string, unknown> & { id: string; type: string; capabilities: string[] }> }> {
    return this.call({ op: "models" });
  }

  /** Tensor inference on an ONNX model; typed arrays go as their bytes. */
  infer(model: string, inputs: Record<string, { datatype: string; shape: number[]; data: Uint8Array | ArrayBufferView | string[] }>, opts: { outputs?: string[]; signal?: AbortSignal } = {}): Promise<{ model: string; outputs: Record<string, Tensor> }> {
    const wire = Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, { datatype: t.datatype, shape: t.shape, data: toBytes(t.data) }]));
    return this.call({ op: "infer", model, inputs: wire, ...(opts.outputs ? { outputs: opts.outputs } : {}) }, opts.signal);
  }

  /** Loads a model (admin role when auth is on). */
  load(model: string): Promise<{ model: string; status: "loaded"; load_time_ms: number }> {
    return this.call({ op: "load", model });
  }

  /** Unloads a model (admin role when auth is on). */
  unload(model: string): Promise<{ model: string; status: "unloaded"; was_loaded: boolean }> {
    return this.call({ op: "unload", model });
  }

  /** Embeddings as Float32Arrays (unit length). */
  async embed(model: string, input: string | string[], opts: { dimensions?: number; truncate?: boolean; signal?: AbortSignal } = {}): Promise<{ embeddings: Float32Array[]; usage: { prompt_tokens: number } }> {
    const { signal, ...rest } = opts;
    const r = await this.call({ op: "embed", model, input, ...rest }, signal);
    // Copied out of the frame (the bytes may be a view of it, at any offset).
    return { embeddings: (r.embeddings as Uint8Array[]).map((b) => new Float32Array(new Uint8Array(b).buffer)), usage: r.usage };
  }

  /** A whole generation. */
  generate(model: string, opts: GenerateOptions & { stream?: false }): Promise<Generation>;
  /** A streamed generation: `for await (const text of client.generate(model, {..., stream: true}))`. */
  generate(model: string, opts: GenerateOptions & { stream: true }): GenerationStream;
  generate(model: string, opts: GenerateOptions & { stream?: boolean }): Promise<Generation> | GenerationStream {
    const { signal, stream, ...settings } = opts;
    const request = { op: "generate", model, ...settings, ...(stream ? { stream: true } : {}) };
    if (!stream) return this.call(request, signal);
    const queue: string[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    const result = this.open().then((c) =>
      this.send(c, request, (frame) => {
        queue.push(frame.text as string);
        wake?.();
      }, signal),
    ).then((frame) => ({ finish_reason: frame.finish_reason, usage: frame.usage }) as Omit<Generation, "text">).finally(() => {
      finished = true;
      wake?.();
    });
    result.catch(() => {});
    return {
      result,
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length > 0) yield queue.shift()!;
          if (finished) {
            await result;
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
    };
  }

  close(): void {
    this.connection?.close(new InfernoIpcError("CANCELLED", "the client closed the connection"));
    this.connection = undefined;
  }
}

/** Connects to an Inferno IPC socket (and says hello, with the token when given). */
export async function connect(socketPath: string, options: ConnectOptions = {}): Promise<InfernoClient> {
  const client = new InfernoClient(socketPath, options);
  await client.health();
  return client;
}
