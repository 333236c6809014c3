import type { FastifyReply, FastifyRequest } from "fastify";
import type { GenerationChunk, GenerationResult, GenerationStream } from "../core/generation.js";
import { toInfernoError } from "../errors/error-handler.js";
import type { InfernoError } from "../errors/catalogue.js";

/** How one dialect frames a generation as Server-Sent Events. */
export interface SseFormat {
  chunk(chunk: GenerationChunk): unknown;
  done(result: GenerationResult): unknown;
  error(err: InfernoError): unknown;
  /** A last raw line after the done event (OpenAI's `[DONE]`). */
  trailer?: string;
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function abortOnDisconnect(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  });
  return controller;
}

const frame = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`;

/**
 * Streams a generation as SSE. The headers go out with the first event; a slow reader pauses generation
 * (we wait for 'drain'), and a reader that leaves aborts it through the controller.
 */
export async function sendSse(
  request: FastifyRequest,
  reply: FastifyReply,
  stream: GenerationStream,
  format: SseFormat,
  controller: AbortController,
): Promise<GenerationResult | undefined> {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  const write = async (text: string) => {
    if (!res.write(text) && !res.destroyed) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    }
  };
  let result: GenerationResult | undefined;
  try {
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        result = step.value;
        break;
      }
      if (res.destroyed) break;
      await write(frame(format.chunk(step.value)));
    }
    if (result && !controller.signal.aborted) {
      await write(frame(format.done(result)));
      if (format.trailer) await write(format.trailer);
    }
  } catch (err) {
    const coded = toInfernoError(err);
    request.log.error({ err, code: coded.code }, "generation failed mid-stream");
    if (!res.destroyed) await write(frame(format.error(coded)));
  } finally {
    await stream.return(undefined as never).catch(() => undefined);
    res.end();
  }
  return result;
}
