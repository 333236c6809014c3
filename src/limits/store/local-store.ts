import type { LimitStore, WindowCount } from "./limit-store.js";

/** Expired windows are swept once the map has doubled since the last sweep: amortised O(1) per window. */
const MIN_SWEEP_SIZE = 1024;

/** Fixed windows in a Map, for one process. `now` is injectable so tests can move time. */
export class LocalStore implements LimitStore {
  private readonly windows = new Map<string, WindowCount>();
  private sweepAt = MIN_SWEEP_SIZE;

  constructor(private readonly now: () => number = Date.now) {}

  async incr(key: string, windowMs: number, by = 1): Promise<WindowCount> {
    const now = this.now();
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, window);
      if (this.windows.size >= this.sweepAt) this.sweep(now);
    }
    window.count += by;
    return { ...window };
  }

  async get(key: string): Promise<WindowCount | undefined> {
    const window = this.windows.get(key);
    return window && window.resetAt > this.now() ? { ...window } : undefined;
  }

  private sweep(now: number): void {
    for (const [key, window] of this.windows) if (window.resetAt <= now) this.windows.delete(key);
    this.sweepAt = Math.max(MIN_SWEEP_SIZE, this.windows.size * 2);
  }
}
