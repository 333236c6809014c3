/** Which limit refused a request: the `limit` label of inferno_rate_limited_total and `details.limit`. */
export type LimitName = "requests_per_minute" | "requests_per_hour" | "tokens_per_minute" | "concurrent_requests";

/** A fixed-window counter: what was counted since the window opened and when it closes (epoch ms). */
export interface WindowCount {
  count: number;
  resetAt: number;
}

/**
 * Where rate-limit windows are counted. LocalStore keeps them in this process; a shared store (Redis,
 * say) implementing the same two calls lets several replicas enforce one set of limits.
 */
export interface LimitStore {
  /** Adds `by` (default 1) to the key's open window, opening one of `windowMs` when there is none. */
  incr(key: string, windowMs: number, by?: number): Promise<WindowCount>;
  /** The key's open window, or undefined when it has none. */
  get(key: string): Promise<WindowCount | undefined>;
}
