/**
 * Finds stop strings in streamed text without rescanning what was already emitted: it holds back only
 * the tail that could still grow into a stop string, so each token costs O((piece + longest stop) ×
 * stops) character comparisons, however long the stream, and allocates only the strings it returns.
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
    const from = this.partialStart(text);
    this.held = text.slice(from);
    return { emit: text.slice(0, from), stopped: false };
  }

  /** Whatever is still held back, released at the end of generation. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Start of the longest suffix of text that is a proper prefix of some stop string (text.length if none). */
  private partialStart(text: string): number {
    for (let from = Math.max(0, text.length - this.maxLen + 1); from < text.length; from++) {
      for (const s of this.stops) if (isProperPrefixAt(s, text, from)) return from;
    }
    return text.length;
  }
}

/** Whether text from `from` to its end is a proper prefix of `stop`, compared in place. */
function isProperPrefixAt(stop: string, text: string, from: number): boolean {
  const n = text.length - from;
  if (n >= stop.length) return false;
  for (let k = 0; k < n; k++) if (stop.charCodeAt(k) !== text.charCodeAt(from + k)) return false;
  return true;
}
