// Progress output for `inferno pull`. On a terminal a single line is redrawn in place; anywhere else
// (CI logs, files) a plain line is printed only every 10% or 30 s, so long downloads don't flood the log.
import type { PullProgress } from "./pull-model.js";

/** The part of a stream the bar uses; process.stderr fits. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface ProgressBar {
  update(p: PullProgress): void;
  /** Draws the final state and ends the line. */
  done(): void;
}

const TTY_INTERVAL_MS = 100;
const LOG_INTERVAL_MS = 30_000;

export function createProgressBar(stream: ProgressStream, now: () => number = Date.now): ProgressBar {
  let last: PullProgress | null = null;
  let startedAt = 0;
  let drawnAt = -Infinity;
  let loggedDecile = -1;
  let drawnLast = false;

  const draw = (p: PullProgress, t: number) => {
    drawnAt = t;
    drawnLast = true;
    const line = describe(p, t - startedAt, stream.isTTY ? barWidth(stream.columns) : 0);
    stream.write(stream.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
  };

  return {
    update(p) {
      const t = now();
      if (!last) startedAt = t;
      last = p;
      drawnLast = false;
      if (stream.isTTY) {
        if (t - drawnAt >= TTY_INTERVAL_MS) draw(p, t);
        return;
      }
      const decile = p.total ? Math.floor((10 * p.received) / p.total) : -1;
      if (decile > loggedDecile || t - drawnAt >= LOG_INTERVAL_MS) {
        loggedDecile = Math.max(decile, loggedDecile);
        draw(p, t);
      }
    },
    done() {
      if (!last) return;
      if (!drawnLast) draw(last, now());
      if (stream.isTTY) stream.write("\n");
    },
  };
}

function describe(p: PullProgress, elapsedMs: number, width: number): string {
  const speed = elapsedMs > 0 ? ((p.received - p.resumedFrom) * 1000) / elapsedMs : 0;
  const rate = `${formatBytes(speed)}/s`;
  if (!p.total) return `${formatBytes(p.received)}  ${rate}`;
  const fraction = Math.min(1, p.received / p.total);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const filled = Math.round(fraction * width);
  const bar = width > 0 ? ` [${"#".repeat(filled)}${"-".repeat(width - filled)}]` : "";
  const eta = speed > 0 && fraction < 1 ? `  ETA ${formatDuration((p.total - p.received) / speed)}` : "";
  return `${percent}${bar}  ${formatBytes(p.received)} / ${formatBytes(p.total)}  ${rate}${eta}`;
}

// Leaves room for the numbers (about 50 columns) on narrow terminals.
function barWidth(columns: number | undefined): number {
  return Math.max(10, Math.min(40, (columns ?? 80) - 50));
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
