import { z } from "zod";
import type { Principal } from "../auth/principal.js";
import type { GenerationChunk, GenerationResult } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";
import { inferenceBody, usageOfOne } from "./native.js";

/** Close codes: going away (shutdown), policy violation (a slow consumer), not authenticated (4401 echoes HTTP 401). */
export const WS_CLOSE = { goingAway: 1001, policyViolation: 1008, unauthenticated: 4401 } as const;

/** Names an inference on its socket; the client chooses it and every reply about it carries it. */
const requestId = z.string().min(1).max(256);

/** What a client may send, by `type` (the API reference's WebSocket message types). */
const clientSchemas = {
  auth: z.object({ type: z.literal("auth"), token: z.string().min(1).max(8192) }),
  // The native `/inference` body plus an id; `stream: false` sends only the final `complete`.
  inference: inferenceBody.extend({ type: z.literal("inference"), id: requestId }),
  cancel: z.object({ type: z.literal("cancel"), id: requestId }),
  ping: z.object({ type: z.literal("ping") }),
};

type ClientSchemas = typeof clientSchemas;
export type ClientMessage = { [K in keyof ClientSchemas]: z.infer<ClientSchemas[K]> }[keyof ClientSchemas];
export type InferenceMessage = z.infer<ClientSchemas["inference"]>;

/** A message read off the socket: valid, or the coded error to answer it with (and its id, when it had one). */
export type ParsedMessage = { ok: true; message: ClientMessage } | { ok: false; error: InfernoError; id?: string };

const isKnownType = (type: unknown): type is keyof ClientSchemas => typeof type === "string" && Object.hasOwn(clientSchemas, type);

/** Parses and validates one client message; never throws. */
export function parseClientMessage(text: string): ParsedMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: new InfernoError("INVALID_REQUEST", "message is not valid JSON", { reason: "invalid_json" }) };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: new InfernoError("INVALID_REQUEST", "a message is a JSON object with a 'type'", { reason: "not_an_object" }) };
  }
  const { type, id } = value as { type?: unknown; id?: unknown };
  const echoId = typeof id === "string" && requestId.safeParse(id).success ? { id } : {};
  if (!isKnownType(type)) {
    const known = Object.keys(clientSchemas).join(", ");
    const message = `unknown message type ${JSON.stringify(type ?? null)}; expected one of ${known}`;
    return { ok: false, error: new InfernoError("INVALID_REQUEST", message, { reason: "unknown_type" }), ...echoId };
  }
  const result = clientSchemas[type].safeParse(value);
  if (result.success) return { ok: true, message: result.data };
  const issues = result.error.issues.map((i) => ({ path: i.path.join(".") || "(message)", message: i.message }));
  const first = issues[0]!;
  const error = new InfernoError("INVALID_REQUEST", `invalid ${type} message: ${first.path}: ${first.message}`, { issues }, { param: first.path });
  return { ok: false, error, ...echoId };
}

/** `usage` as in the native API. */
type Usage = ReturnType<typeof usageOfOne>;

/** What the server sends. */
export type ServerMessage =
  | { type: "auth"; ok: true; user: string; role: string }
  | { type: "pong" }
  | { type: "token"; id: string; token: string; index: number }
  | { type: "complete"; id: string; finish_reason: "stop" | "length" | "cancelled"; text: string; usage?: Usage }
  | { type: "error"; id?: string; code: string; message: string; details?: Record<string, unknown> };

/** Serializers for every server message, so the protocol's shapes live in one place. */
export const wsOut = {
  authOk: (p: Principal): ServerMessage => ({ type: "auth", ok: true, user: p.user, role: p.role }),
  pong: (): ServerMessage => ({ type: "pong" }),
  token: (id: string, chunk: GenerationChunk): ServerMessage => ({ type: "token", id, token: chunk.text, index: chunk.index }),
  complete: (id: string, r: GenerationResult): ServerMessage => ({ type: "complete", id, finish_reason: r.finishReason, text: r.text, usage: usageOfOne(r) }),
  /**
   * A cancelled inference ends like any other, with `finish_reason: "cancelled"`, the text sent before the
   * cancel, and the usage of what was generated (absent when it was cancelled before it got a sequence).
   */
  cancelled: (id: string, sentText: string, r?: GenerationResult): ServerMessage => ({
    type: "complete",
    id,
    finish_reason: "cancelled",
    text: sentText,
    ...(r ? { usage: usageOfOne(r) } : {}),
  }),
  error: (err: InfernoError, id?: string): ServerMessage => ({
    type: "error",
    ...(id === undefined ? {} : { id }),
    code: err.code,
    message: err.message,
    ...(err.details ? { details: err.details } : {}),
  }),
};
