// The peer bench's closed loop, shared by the HTTP sides (in the bench's process) and the raw side (in its
// child): closed-loop clients whose first requests are staggered in length, every request checked to run
// to its max_tokens.
import { closedLoop, type WindowResult } from "./closed-loop.js";
import { decodeRate, type StreamTiming } from "./stats.js";

/** A closed-loop window, and the decode rate of every full-length request that ended in it. */
export interface LoopResult extends WindowResult {
  decodeRates: number[];
  /** Requests whose stream had fewer token events than tokens (text held back and merged): the window's rate, which counts events, undercounts them. */
  merged: number;
}

/** One request for `tokens` tokens; `onToken` once per token event; raw stops at `deadlineMs` with finishReason "deadline". */
export type PeerRequest = (tokens: number, signal: AbortSignal, onToken: (now: number) => void, deadlineMs: number) => Promise<StreamTiming>;

/**
 * Client i of n first asks for maxTokens − ⌊i · maxTokens / n⌋ tokens, then always maxTokens. Clients that
 * started together would otherwise stay in lockstep, every sequence at the same position, all ending and
 * restarting at once; staggered, the sequences sit at positions spread over the whole request, and request
 * ends and starts (with their queue hand-offs) are spread over the window, as with independent users.
 */
export function firstRequestTokens(client: number, clients: number, maxTokens: number): number {
  return maxTokens - Math.floor((client * maxTokens) / clients);
}

export async function staggeredLoop(clients: number, windowMs: number, maxTokens: number, one: PeerRequest): Promise<LoopResult> {
  const decodeRates: number[] = [];
  const started = new Set<number>();
  let merged = 0;
  const window = await closedLoop(clients, windowMs, async (client, signal, onToken, deadlineMs) => {
    const tokens = started.has(client) ? maxTokens : firstRequestTokens(client, clients, maxTokens);
    started.add(client);
    let events = 0;
    const counted = (now: number) => {
      events++;
      onToken(now);
    };
    const t = await one(tokens, signal, counted, deadlineMs);
    if (t.finishReason === "deadline") return;
    // Every side is asked to ignore end-of-sequence: a shorter request is an error here.
    if (t.finishReason !== "length" || t.tokens !== tokens) throw new Error(`ended early: ${t.finishReason} after ${t.tokens} of ${tokens} tokens`);
    if (events < t.tokens) merged++;
    if (tokens === maxTokens) decodeRates.push(decodeRate(t));
  });
  return { ...window, decodeRates, merged };
}
