import http from "node:http";
import type { StreamTiming } from "./stats.js";

export interface StreamRequest {
  model: string;
  prompt: string;
  maxTokens: number;
  /** Sends `ignore_eos: true`: the stream runs to maxTokens. */
  ignoreEos?: boolean;
}

const TOKEN_EVENT = 'data: {"token"';

/**
 * A keep-alive agent for one bench scenario. node:http rather than fetch: on the 2-core bench machine
 * Node 20's fetch costs several times the client CPU per event, and the client shares the cores with
 * the server it measures.
 */
export const streamAgent = (sockets: number) => new http.Agent({ keepAlive: true, maxSockets: sockets });

export interface StreamHooks {
  /** Destroys the request: the returned promise then rejects. */
  signal?: AbortSignal;
  /** Called with performance.now() for every token event as it arrives. */
  onToken?: (now: number) => void;
}

/**
 * POSTs to /inference/stream and times the SSE events as they arrive: the first and last `token`
 * events, and the `done` event whose usage gives the token count (an event may carry several tokens).
 * Token events are recognised by their prefix and never parsed, so the client costs the server's
 * cores as little as it can; only the `done` event is parsed. A status other than 200, a failed
 * stream or a lost connection rejects.
 */
export function streamInference(agent: http.Agent, baseUrl: string, req: StreamRequest, hooks: StreamHooks = {}): Promise<StreamTiming> {
  const body = JSON.stringify({ model: req.model, prompt: req.prompt, max_tokens: req.maxTokens, temperature: 0, ...(req.ignoreEos ? { ignore_eos: true } : {}) });
  const startMs = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${baseUrl}/inference/stream`,
      { method: "POST", agent, signal: hooks.signal, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.setEncoding("utf8");
        if (res.statusCode !== 200) {
          let text = "";
          res.on("data", (c: string) => (text += c));
          res.on("end", () => reject(new Error(`POST /inference/stream answered ${res.statusCode}: ${text}`)));
          return;
        }
        let buffered = "";
        let firstTokenMs = 0;
        let lastTokenMs = 0;
        let done: { finish_reason: string; usage: { completion_tokens: number } } | undefined;
        let failed: Error | undefined;
        res.on("data", (text: string) => {
          const now = performance.now();
          buffered = forEachEvent(buffered + text, (buf, start, end) => {
            if (buf.startsWith(TOKEN_EVENT, start)) {
              if (firstTokenMs === 0) firstTokenMs = now;
              lastTokenMs = now;
              hooks.onToken?.(now);
            } else if (buf.startsWith("data: ", start)) {
              const event = JSON.parse(buf.slice(start + 6, end)) as Record<string, unknown>;
              if (event.finish_reason === "error") failed = new Error(`stream failed: ${JSON.stringify(event)}`);
              else if (event.done === true) done = event as unknown as typeof done;
            }
          });
        });
        res.on("error", reject);
        res.on("end", () => {
          if (failed) return reject(failed);
          if (!done) return reject(new Error("stream ended without a done event"));
          resolve({
            tokens: done.usage.completion_tokens,
            startMs,
            firstTokenMs,
            lastTokenMs,
            endMs: performance.now(),
            finishReason: done.finish_reason,
          });
        });
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

/** `streams` requests sent at once. */
export function streamConcurrently(agent: http.Agent, baseUrl: string, req: StreamRequest, streams: number): Promise<StreamTiming[]> {
  return Promise.all(Array.from({ length: streams }, () => streamInference(agent, baseUrl, req)));
}

/**
 * Calls `onEvent(buffer, start, end)` for every complete SSE event in `buffer` (the event's text is
 * buffer[start, end), without its blank line) and returns the incomplete rest. Offsets instead of
 * substrings, so a token event costs the client no allocation.
 */
export function forEachEvent(buffer: string, onEvent: (buffer: string, start: number, end: number) => void): string {
  let start = 0;
  let end: number;
  while ((end = buffer.indexOf("\n\n", start)) !== -1) {
    onEvent(buffer, start, end);
    start = end + 2;
  }
  return start === 0 ? buffer : buffer.slice(start);
}
