import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Whose usage the work in the current async context is, as a rate-limit key (`key:<id>`, `user:<name>`,
 * `ip:<addr>`). The registry's generation events carry no request, but they are emitted in the async
 * context of whoever pulled the tokens: a live request's handler, or the batch worker running an item
 * for its owner. Both set the key here, so the rate limiter charges tokens the same way for each.
 */
export class UsageContext {
  readonly #storage = new AsyncLocalStorage<string>();

  /** Runs `fn` (and everything it starts) as `key`'s usage. */
  run<T>(key: string, fn: () => T): T {
    return this.#storage.run(key, fn);
  }

  /** The key whose usage this is, or undefined outside any `run`. */
  key(): string | undefined {
    return this.#storage.getStore();
  }
}
