import { Socket } from "node:net";
import type { FastifyReply, FastifyRequest } from "fastify";
import { isInfernoError, type InfernoError } from "../errors/catalogue.js";
import { isShedding, toInfernoError } from "../errors/error-handler.js";
import { noteErrorCode } from "../observability/request-log.js";

/** A line written as-is (`data: [DONE]`) rather than JSON-encoded. */
export class RawEvent {
  constructor(readonly data: string) {}
}

/** An AbortSignal that fires when the client goes away before the response is complete, or the request times out. */
export function abortOnDisconnect(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  // The request's own signal (request-timeout plugin) aborts on disconnect and on timeout: follow it.
  const own = reply.request.abortSignal;
  if (own) {
    if (own.aborted) controller.abort(own.reason);
    else own.addEventListener("abort", () => controller.abort(own.reason), { once: true });
    return controller;
  }
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  });
  return controller;
}

/**
 * Streams events as SSE (`data: <json>\n\n`). A slow reader pauses the producer (we wait for 'drain');
 * a reader that leaves ends the loop, which returns the event iterator and so stops generation.
 * An error after the headers went out becomes a last event made by `errorEvent`.
 */
export async function sendSse(
  request: FastifyRequest,
  reply: FastifyReply,
  events: AsyncIterable<unknown>,
  errorEvent: (err: InfernoError) => unknown,
): Promise<void> {
  const frame = (e: unknown) => `data: ${e instanceof RawEvent ? e.data : JSON.stringify(e)}\n\n`;
  await streamEvents(request, reply, "text/event-stream; charset=utf-8", events, frame, errorEvent);
}

/**
 * Shared by SSE and NDJSON: takes the response over from Fastify (keeping the headers hooks set), then
 * writes each framed event with backpressure and ends the response whatever happens.
 */
export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  contentType: string,
  events: AsyncIterable<unknown>,
  frame: (event: unknown) => string,
  errorEvent: (err: InfernoError) => unknown,
): Promise<void> {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": contentType,
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  // After the first event, which takes the headers out through res.write, events go straight onto the socket as
  // HTTP/1.1 chunks, one write each. res.write frames a chunk the same way but corks the socket and uncorks it at
  // the next tick, then writes size line, data and CRLF as one writev: a trip through Node's stream machinery on
  // every token, on a thread whose time one stream on 2 cores pays for twice and more (README, Performance).
  // Without chunked encoding (an HTTP/1.0 client) every event goes through res.write.
  let socket: Socket | undefined;
  const write = (text: string): boolean => {
    if (socket) return socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
    const ok = res.write(text);
    if (res.chunkedEncoding && res.socket instanceof Socket) socket = res.socket;
    return ok;
  };
  // Resolves once a full socket buffer has drained (or the response closed). Most writes never need it, so the
  // per-event path is a plain synchronous write with no promise of its own.
  const drained = () =>
    new Promise<void>((resolve) => {
      const source = socket ?? res;
      const done = () => {
        source.off("drain", done);
        res.off("close", done);
        resolve();
      };
      source.on("drain", done);
      res.on("close", done);
    });
  try {
    for await (const event of events) {
      if (res.destroyed) break;
      // Aborted for a coded reason (TIMEOUT): end with that error, not with what the stopped generation still yields.
      const reason = request.abortSignal?.reason;
      if (isInfernoError(reason)) throw reason;
      if (!write(frame(event)) && !res.destroyed) await drained();
    }
  } catch (err) {
    const coded = toInfernoError(err);
    noteErrorCode(request, coded.code);
    if (isShedding(coded)) request.log.warn({ code: coded.code, reason: coded.message }, "stream ended early");
    else request.log.error({ err, code: coded.code }, "generation failed mid-stream");
    if (!res.destroyed && !write(frame(errorEvent(coded))) && !res.destroyed) await drained();
  } finally {
    res.end();
  }
}
