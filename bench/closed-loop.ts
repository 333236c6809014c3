import { setMaxListeners } from "node:events";

/** Time a closed loop lets the clients fill the server's sequences and queue before it counts tokens. */
export const WARMUP_MS = 400;

/** What a closed-loop window gave: tokens/s inside it, and each request's time to first token, and failures. */
export interface WindowResult {
  rate: number;
  ttftMs: number[];
  errors: string[];
}

/** One request of a closed-loop client: `onToken` for every token, abandoned when `signal` fires, done by `deadlineMs`. */
export type LoopRequest = (client: number, signal: AbortSignal, onToken: (now: number) => void, deadlineMs: number) => Promise<unknown>;

/**
 * `clients` closed-loop clients, each sending its next request as soon as the last one ends, for a warm-up
 * and then `windowMs`. The rate counts the tokens that arrive inside the window; requests still running at
 * its end are abandoned (on the Inferno side that is a disconnect, which the server must handle too).
 */
export async function closedLoop(clients: number, windowMs: number, one: LoopRequest): Promise<WindowResult> {
  const from = performance.now() + WARMUP_MS;
  const to = from + windowMs;
  const stop = new AbortController();
  setMaxListeners(0, stop.signal); // one listener per request in flight, up to 64
  const timer = setTimeout(() => stop.abort(), to - performance.now());
  let tokens = 0;
  const ttftMs: number[] = [];
  const errors: string[] = [];
  const client = async (i: number) => {
    while (performance.now() < to) {
      const started = performance.now();
      let first = true;
      const onToken = (now: number) => {
        if (first && now >= from && now < to) ttftMs.push(now - started);
        first = false;
        if (now >= from && now < to) tokens++;
      };
      try {
        await one(i, stop.signal, onToken, to);
      } catch (err) {
        if (!stop.signal.aborted) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  clearTimeout(timer);
  return { rate: (tokens * 1000) / windowMs, ttftMs, errors };
}
