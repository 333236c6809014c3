import type { TokenLogprob } from "./generation.js";

/**
 * Pairs per-token logprobs with the text actually emitted: text can be held back (a possible stop
 * string, a partial UTF-8 character), so a token's entry is released with the chunk that carries the
 * end of its text, and entries for text a stop string cut off are never released.
 */
export class LogprobQueue {
  private entries: Array<{ entry: TokenLogprob; end: number }> = [];
  private produced = 0;
  private emitted = 0;

  /** A generated token whose decoded text has `textLength` characters (0 while a character is incomplete). */
  push(entry: TokenLogprob, textLength: number): void {
    this.produced += textLength;
    this.entries.push({ entry, end: this.produced });
  }

  /** Entries fully covered once `length` more characters have been emitted. */
  take(length: number): TokenLogprob[] {
    this.emitted += length;
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.end <= this.emitted) n++;
    return this.entries.splice(0, n).map((e) => e.entry);
  }
}
