import { InfernoError } from "../errors/catalogue.js";

/** Live requests are served before batch work whenever both wait. */
export type Priority = "live" | "batch";

export interface PoolLimits {
  /** Most requests that may wait; one more is refused at once with SERVICE_UNAVAILABLE. */
  maxWaiting?: number;
  /** How long a request may wait before it fails with TIMEOUT (ms). */
  waitTimeoutMs?: number;
  /** Memory the waiting requests of every pool that shares it may hold together (see `WaitingMemory`). */
  memory?: WaitingMemory;
}

/** How a request waits: which free resource it takes, its class, and the memory it holds while it waits. */
export interface AcquireOptions<T> {
  /** Chooses which free resource to take (an index into the free list); default the first. */
  pick?: (free: T[]) => number;
  priority?: Priority;
  /** Estimated bytes the request holds while it waits (its body, prompt and connection), counted against `memory`. */
  bytes?: number;
}

/**
 * A byte budget for waiting requests, shared by the pools of every model: a request waiting for a
 * sequence still holds its connection, its parsed body and its prompt, so a long queue of large prompts
 * must not take the memory the models and the running requests need.
 */
export class WaitingMemory {
  private held = 0;

  constructor(readonly limitBytes: number) {}

  get usedBytes(): number {
    return this.held;
  }

  /** Takes `bytes` when they fit under the limit; false (and nothing taken) when they do not. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limitBytes) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }
}

const queueFull = (message: string, details: Record<string, unknown>) =>
  new InfernoError("SERVICE_UNAVAILABLE", message, { ...details, retry_after: 1 });

interface Waiter<T> {
  resolve: (r: T) => void;
  reject: (e: unknown) => void;
  pick?: ((free: T[]) => number) | undefined;
  priority: Priority;
  cleanup: () => void;
}

/**
 * Hands a limited set of resources (a model's sequences) to waiters: live requests first, each class in
 * FIFO order. The queue is bounded and waits are timed; a waiter whose signal aborts leaves the queue
 * without a trace.
 */
export class ResourcePool<T> {
  private readonly free: T[];
  private readonly waiters: Waiter<T>[] = [];

  constructor(resources: T[], private readonly limits: PoolLimits = {}) {
    this.free = [...resources];
  }

  get available(): number {
    return this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  acquire(signal?: AbortSignal, options: AcquireOptions<T> = {}): Promise<T> {
    const { pick, priority = "live", bytes = 0 } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free.length > 0 && !this.waiters.some((w) => w.priority === "live" || priority === "batch")) {
      return Promise.resolve(this.take(pick));
    }
    const max = this.limits.maxWaiting;
    if (max !== undefined && this.waiters.length >= max) {
      return Promise.reject(queueFull(`the model's queue is full (${max} requests waiting); retry shortly`, { queue_size: max }));
    }
    const memory = this.limits.memory;
    if (memory && !memory.take(bytes)) {
      return Promise.reject(
        queueFull(`the requests waiting for a sequence hold all the memory the queue may take (${Math.round(memory.limitBytes / 2 ** 20)} MiB); retry shortly`, {
          queue_memory_bytes: memory.limitBytes,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const leave = (err: unknown) => {
        const i = this.waiters.indexOf(waiter);
        if (i === -1) return;
        this.waiters.splice(i, 1);
        waiter.cleanup();
        reject(err);
      };
      const onAbort = () => leave(signal!.reason);
      const timeoutMs = this.limits.waitTimeoutMs;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => leave(new InfernoError("TIMEOUT", `waited ${timeoutMs} ms for a free sequence`, { waited_ms: timeoutMs })), timeoutMs);
      const waiter: Waiter<T> = {
        resolve,
        reject,
        pick,
        priority,
        cleanup: () => {
          memory?.give(bytes);
          if (timer) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      // Live waiters go ahead of every batch waiter; within a class, first come first served.
      const firstBatch = priority === "live" ? this.waiters.findIndex((w) => w.priority === "batch") : -1;
      if (firstBatch === -1) this.waiters.push(waiter);
      else this.waiters.splice(firstBatch, 0, waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  release(resource: T): void {
    this.free.push(resource);
    const next = this.waiters.shift();
    if (!next) return;
    next.cleanup();
    next.resolve(this.take(next.pick));
  }

  private take(pick?: (free: T[]) => number): T {
    const i = pick ? Math.max(0, Math.min(this.free.length - 1, pick(this.free))) : 0;
    return this.free.splice(i, 1)[0]!;
  }
}
