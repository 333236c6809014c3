import type { FastifyReply, FastifyRequest } from "fastify";
import type { InfernoError } from "../errors/catalogue.js";
import { streamEvents } from "./sse.js";

/**
 * Streams events as newline-delimited JSON (one object per line, as Ollama does). JSON.stringify
 * escapes every newline inside strings, so a line is always exactly one event. Backpressure,
 * disconnects and mid-stream errors are handled by the writer shared with SSE.
 */
export async function sendNdjson(
  request: FastifyRequest,
  reply: FastifyReply,
  events: AsyncIterable<unknown>,
  errorEvent: (err: InfernoError) => unknown,
): Promise<void> {
  await streamEvents(request, reply, "application/x-ndjson", events, (e) => `${JSON.stringify(e)}\n`, errorEvent);
}
