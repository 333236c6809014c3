// The IPC protocol's messages (docs/ipc.md): one MessagePack map per frame. Requests carry `id` (an
// unsigned integer the client picks, unique per connection while in flight) and `op`; the fields of each
// op are checked here with the same bounds as the REST bodies they mirror.
import { z } from "zod";
import type { ChatMessage } from "../core/chat.js";
import type { GenerateRequest, GenerationResult } from "../core/generation.js";
import type { ErrorCode } from "../errors/catalogue.js";
import { embeddingInput } from "./embedding-input.js";
import { samplingFields, toGenerateRequest, usageOfOne, type GenerationLimits } from "./native.js";

export const IPC_PROTOCOL_VERSION = 1;

/** The id and op every request has; the rest is checked per op. */
export const requestHead = z.object({
  id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  op: z.string(),
});

const modelName = z.string().min(1).max(256);
const rawTensor = z.object({
  datatype: z.string().max(16),
  shape: z.array(z.number().int().min(0)).max(8),
  /** Raw little-endian row-major bytes (MessagePack bin); strings as an array of UTF-8 strings. */
  data: z.union([z.instanceof(Uint8Array), z.array(z.string().max(1_000_000)).max(1_000_000)]),
}).strict();
const message = z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string().max(1_000_000) }).strict();

export const ipcOps = {
  hello: z.object({
    version: z.number().int().min(1).optional(),
    token: z.string().max(4096).optional(),
    /** The API version the client expects (README, API versioning); another major is refused. */
    api_version: z.string().max(64).optional(),
  }),
  health: z.object({}),
  models: z.object({}),
  infer: z.object({
    model: modelName,
    inputs: z.record(z.string().max(256), rawTensor),
    outputs: z.array(z.string().max(256)).max(256).optional(),
  }),
  generate: z.object({
    model: modelName,
    prompt: z.string().max(1_000_000).optional(),
    messages: z.array(message).min(1).max(10_000).optional(),
    ...samplingFields,
  }).refine((b) => (b.prompt === undefined) !== (b.messages === undefined), { message: "give either prompt or messages", path: ["prompt"] }),
  embed: z.object({
    model: modelName,
    input: embeddingInput,
    truncate: z.boolean().optional(),
    dimensions: z.number().int().min(1).optional(),
    /** Unit-length vectors (default true), as the native route's `normalize`. */
    normalize: z.boolean().optional(),
  }),
  cancel: z.object({ target: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }),
  load: z.object({ model: modelName }),
  unload: z.object({ model: modelName }),
} as const;

export type IpcOp = keyof typeof ipcOps;
export const isIpcOp = (op: string): op is IpcOp => Object.hasOwn(ipcOps, op);

export type GenerateBody = z.infer<(typeof ipcOps)["generate"]>;

/** A generate body as the canonical request, with messages when it is a chat. */
export function generateRequest(body: GenerateBody, limits: GenerationLimits): GenerateRequest & { messages?: ChatMessage[] } {
  const { messages, prompt, ...settings } = body;
  const gen = toGenerateRequest(body.model, { ...settings, prompt: prompt ?? "" }, limits);
  return messages ? { ...gen, messages } : gen;
}

/** The frames the server sends. */
export const ipcOut = {
  result: (id: number, result: unknown) => ({ id, result }),
  error: (id: number | null, code: ErrorCode, message: string, details?: Record<string, unknown>) => ({
    id, error: { code, message, ...(details ? { details } : {}) },
  }),
  token: (id: number, text: string) => ({ id, event: "token", text }),
  done: (id: number, r: GenerationResult, cancelled: boolean) => ({
    id, event: "done", finish_reason: cancelled ? "cancelled" : r.finishReason, usage: usageOfOne(r),
  }),
  generated: (id: number, r: GenerationResult, cancelled: boolean) => ({
    id, result: { text: r.text, finish_reason: cancelled ? "cancelled" : r.finishReason, usage: usageOfOne(r) },
  }),
};
