import http from "node:http";
import { forEachEvent, type StreamHooks } from "./sse-client.js";
import type { StreamTiming } from "./stats.js";

export interface CompletionRequest {
  prompt: string;
  maxTokens: number;
  /** llama-server's `cache_prompt` (default true: reuse the slot's matching prefix). */
  cachePrompt?: boolean;
}

/**
 * An agent for llama-server, which the bench does not keep alive: a streamed response ends with the
 * connection in a state where the next request on it can fail with "socket hang up" (seen with
 * node:http's keep-alive agent), so each request opens its own loopback connection.
 */
export const completionAgent = (sockets: number) => new http.Agent({ keepAlive: false, maxSockets: sockets });

const TOKEN_EVENT = 'data: {"index":0,"content":';
const STOP_FALSE = '"stop":false';
const PREDICTED = '"tokens_predicted":';

/** The cumulative `tokens_predicted` of an event, read without parsing it. */
function predictedIn(text: string, from: number, to: number): number {
  const at = text.indexOf(PREDICTED, from);
  if (at === -1 || at > to) return Number.NaN;
  return Number.parseInt(text.slice(at + PREDICTED.length, at + PREDICTED.length + 12), 10);
}

/**
 * POSTs llama-server's native `/completion` with `stream: true`, greedy, `ignore_eos`, and times the SSE
 * events as they arrive, as sse-client.ts does for Inferno: token events are recognised by their prefix
 * and `"stop":false` and not parsed (their cumulative `tokens_predicted` is read in place, so an event
 * that carries several tokens, e.g. bytes held back to complete a UTF-8 character, counts them all); the
 * final `"stop":true` event is parsed for the token count. `hooks.onToken` is called once per token.
 */
export function streamCompletion(agent: http.Agent, baseUrl: string, req: CompletionRequest, hooks: StreamHooks = {}): Promise<StreamTiming> {
  const body = JSON.stringify({
    prompt: req.prompt,
    n_predict: req.maxTokens,
    stream: true,
    temperature: 0,
    ignore_eos: true,
    ...(req.cachePrompt === false ? { cache_prompt: false } : {}),
  });
  const startMs = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${baseUrl}/completion`,
      { method: "POST", agent, signal: hooks.signal, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.setEncoding("utf8");
        if (res.statusCode !== 200) {
          let text = "";
          res.on("data", (c: string) => (text += c));
          res.on("end", () => reject(new Error(`POST /completion answered ${res.statusCode}: ${text}`)));
          return;
        }
        let buffered = "";
        let firstTokenMs = 0;
        let lastTokenMs = 0;
        let seen = 0;
        let done: { tokens_predicted: number; stop_type?: string } | undefined;
        let failed: Error | undefined;
        res.on("data", (text: string) => {
          const now = performance.now();
          buffered = forEachEvent(buffered + text, (buf, start, end) => {
            const stopAt = buf.indexOf(STOP_FALSE, start);
            if (buf.startsWith(TOKEN_EVENT, start) && stopAt !== -1 && stopAt < end) {
              const predicted = predictedIn(buf, start, end);
              const n = Number.isNaN(predicted) ? 1 : predicted - seen;
              if (n > 0) {
                if (firstTokenMs === 0) firstTokenMs = now;
                lastTokenMs = now;
                seen += n;
                for (let i = 0; i < n; i++) hooks.onToken?.(now);
              }
            } else if (buf.startsWith("data: ", start)) {
              const event = JSON.parse(buf.slice(start + 6, end)) as Record<string, unknown>;
              if (event.error !== undefined) failed = new Error(`stream failed: ${JSON.stringify(event.error)}`);
              else if (event.stop === true) done = event as unknown as typeof done;
            }
          });
        });
        res.on("error", reject);
        res.on("end", () => {
          if (failed) return reject(failed);
          if (!done) return reject(new Error("stream ended without its final stop event"));
          resolve({
            tokens: done.tokens_predicted,
            startMs,
            firstTokenMs,
            lastTokenMs,
            endMs: performance.now(),
            finishReason: done.stop_type === "limit" ? "length" : (done.stop_type ?? "stop"),
          });
        });
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}
