/** Who a request acts as, once authenticated. */
export interface Principal {
  /** The user (API key owner or JWT subject). */
  user: string;
  role: Role;
  /** How they proved it: "api-key", "jwt", or "anonymous" when auth is off. */
  via: "api-key" | "jwt" | "anonymous";
  /** API key id (for per-key limits and audit); absent for JWT and anonymous. */
  keyId?: string;
  /** Per-key rate-limit overrides stored with the key. */
  limits?: Partial<RateLimits>;
}

export type Role = "admin" | "user";

/** Rate limits per API key (or per IP without one); defaults from the API reference. */
export interface RateLimits {
  requestsPerMinute: number;
  requestsPerHour: number;
  tokensPerMinute: number;
  concurrentRequests: number;
}

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The role a route needs; "user" when absent. Checked by the auth plugin's onRequest hook. */
    role?: Role;
  }
}
