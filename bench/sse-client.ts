import type { StreamTiming } from "./stats.js";

export interface StreamRequest {
  model: string;
  prompt: string;
  maxTokens: number;
}

/**
 * POSTs to /inference/stream and times the SSE events as they arrive: the first and last `token`
 * events, and the `done` event whose usage gives the token count (an event may carry several tokens).
 */
export async function streamInference(baseUrl: string, req: StreamRequest): Promise<StreamTiming> {
  const startMs = performance.now();
  const res = await fetch(`${baseUrl}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: req.model, prompt: req.prompt, max_tokens: req.maxTokens, temperature: 0 }),
  });
  if (!res.ok || !res.body) throw new Error(`POST /inference/stream answered ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffered = "";
  let firstTokenMs = 0;
  let lastTokenMs = 0;
  let done: { finish_reason: string; usage: { completion_tokens: number } } | undefined;
  for await (const bytes of res.body) {
    const now = performance.now();
    buffered += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffered.indexOf("\n\n")) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!block.startsWith("data: ")) continue;
      const event = JSON.parse(block.slice(6)) as Record<string, unknown>;
      if (typeof event.token === "string") {
        if (firstTokenMs === 0) firstTokenMs = now;
        lastTokenMs = now;
      } else if (event.done === true) {
        if (event.finish_reason === "error") throw new Error(`stream failed: ${JSON.stringify(event)}`);
        done = event as unknown as typeof done;
      }
    }
  }
  if (!done) throw new Error("stream ended without a done event");
  const endMs = performance.now();
  return {
    tokens: done.usage.completion_tokens,
    startMs,
    firstTokenMs,
    lastTokenMs,
    endMs,
    finishReason: done.finish_reason,
  };
}

/** `streams` requests sent at once. */
export function streamConcurrently(baseUrl: string, req: StreamRequest, streams: number): Promise<StreamTiming[]> {
  return Promise.all(Array.from({ length: streams }, () => streamInference(baseUrl, req)));
}
