/**
 * Finds stop strings in streamed text without rescanning what was already emitted: it holds back only
 * the tail that could still grow into a stop string, so each token costs O(piece + longest stop).
 */
export class StopMatcher {
  private readonly stops: string[];
  private readonly maxLen: number;
  private held = "";

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
    this.maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds text; returns what may be emitted now and whether a stop string was hit (text after it is dropped). */
  push(piece: string): { emit: string; stopped: boolean } {
    if (this.maxLen === 0) return { emit: piece, stopped: false };
    const text = this.held + piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.held = "";
      return { emit: text.slice(0, cut), stopped: true };
    }
    const keep = this.partialSuffixLength(text);
    this.held = text.slice(text.length - keep);
    return { emit: text.slice(0, text.length - keep), stopped: false };
  }

  /** Whatever is still held back, released at the end of generation. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of text that is a proper prefix of some stop string. */
  private partialSuffixLength(text: string): number {
    for (let len = Math.min(this.maxLen - 1, text.length); len > 0; len--) {
      const suffix = text.slice(text.length - len);
      if (this.stops.some((s) => s.startsWith(suffix))) return len;
    }
    return 0;
  }
}
