/** Hands a limited set of resources to waiters in FIFO order; a waiter whose signal aborts leaves the queue. */
export class ResourcePool<T> {
  private readonly free: T[];
  private readonly waiters: Array<{ resolve: (r: T) => void; reject: (e: unknown) => void; pick?: (free: T[]) => number }> = [];

  constructor(resources: T[]) {
    this.free = [...resources];
  }

  get available(): number {
    return this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** `pick` chooses which free resource to take (index into the free list); default the first. */
  acquire(signal?: AbortSignal, pick?: (free: T[]) => number): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free.length > 0 && this.waiters.length === 0) return Promise.resolve(this.take(pick));
    return new Promise<T>((resolve, reject) => {
      const waiter = { resolve, reject, pick };
      this.waiters.push(waiter);
      signal?.addEventListener(
        "abort",
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i !== -1) {
            this.waiters.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
    });
  }

  release(resource: T): void {
    this.free.push(resource);
    const next = this.waiters.shift();
    if (next) next.resolve(this.take(next.pick));
  }

  private take(pick?: (free: T[]) => number): T {
    const i = pick ? Math.max(0, Math.min(this.free.length - 1, pick(this.free))) : 0;
    return this.free.splice(i, 1)[0]!;
  }
}
