// Reading a tensor request's body straight into one buffer of its own, laid out so that the tensor bytes
// start on an 8-byte boundary. Fastify's `parseAs: "buffer"` joins the socket's chunks into a new Buffer
// (one copy); a tensor inside it at an odd offset then needs a second copy to be viewed as Float32Array
// or wider, and, viewing a shared buffer, a third to cross to the session's thread. Here the chunks are
// copied once, at the end, into a buffer marked as the request's own (ownBuffer), which decodeRawTensor
// views and the session client moves to the worker without copying.
import type { Readable } from "node:stream";
import { errorCodes, type FastifyRequest } from "fastify";
import { ownBuffer } from "../runtimes/onnx/session-protocol.js";

const ALIGN = 8;

/**
 * The body of `request` read from `payload` (the stream a content-type parser gets), with byte `lead` of
 * the body 8-byte aligned in its ArrayBuffer. Enforces the route's body limit and the Content-Length, with
 * Fastify's own errors, so the error handler answers them as for any other body.
 */
export function readOwnedBody(request: FastifyRequest, payload: Readable, lead: number): Promise<Buffer> {
  const limit = request.routeOptions.bodyLimit ?? Infinity;
  const header = request.headers["content-length"];
  const declared = header === undefined ? undefined : Number(header);
  return new Promise((resolve, reject) => {
    if (declared !== undefined && declared > limit) return reject(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    // The chunks are kept as they come and copied once at the end: memory follows what was received, never
    // what a Content-Length claims.
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (err?: Error) => {
      payload.removeListener("data", onData);
      payload.removeListener("end", onEnd);
      payload.removeListener("error", onEnd);
      if (err) {
        payload.resume(); // drain what is left so the connection can answer
        reject(err);
      }
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      received += bytes.length;
      if (received > limit) return finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      if (declared !== undefined && received > declared) return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      chunks.push(bytes);
    };
    const onEnd = (err?: Error & { statusCode?: number }) => {
      if (err) {
        if (!(typeof err.statusCode === "number" && err.statusCode >= 400)) err.statusCode = 400;
        return finish(err);
      }
      finish();
      if (declared !== undefined && received !== declared) return reject(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      const pad = (ALIGN - (lead % ALIGN)) % ALIGN;
      const body = Buffer.from(new ArrayBuffer(pad + received), pad, received);
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      ownBuffer(body.buffer as ArrayBuffer);
      resolve(body);
    };
    payload.on("data", onData);
    payload.on("end", onEnd);
    payload.on("error", onEnd);
    payload.resume();
  });
}
