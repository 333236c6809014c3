import type { LlamaContext } from "node-llama-cpp";

/**
 * Puts a proxy in place of a context's native object (node-llama-cpp 3.x keeps it in `_ctx`; it is sealed, so
 * methods cannot be replaced on it): the methods in `wrapped` answer instead of the native ones, every other
 * method passes through, bound once. Proxies stack: a second call wraps the first one's.
 */
export function wrapNativeContext(context: LlamaContext, wrapped: Partial<Record<PropertyKey, unknown>>): void {
  const holder = context as unknown as { _ctx: object };
  const bound = new Map<PropertyKey, unknown>();
  holder._ctx = new Proxy(holder._ctx, {
    get(target, key) {
      if (key in wrapped) return wrapped[key];
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      let fn = bound.get(key);
      if (!fn) bound.set(key, (fn = (value as (...a: unknown[]) => unknown).bind(target)));
      return fn;
    },
  });
}
