import type { Principal, Role } from "./principal.js";

export interface UserRolesOptions {
  /** The user's role in the user store now, or undefined when there is no such user. */
  lookup: (username: string) => Role | undefined;
  /** How long an answer is reused; a demotion or deletion takes effect within this time. */
  ttlMs?: number;
  now?: () => number;
}

/** Long enough to spare the database a read per request, short enough that a demotion bites quickly. */
export const ROLE_TTL_MS = 5000;
/** Entries kept before the expired ones are swept (only tokens this server signed reach the cache). */
const MAX_ENTRIES = 10_000;

/**
 * The role each JWT user has now. A JWT proves who its holder is; what they may do is read from the user
 * store at request time (the CLI may change it from another process, so answers are kept only briefly),
 * never taken from the token, which would keep a demoted or deleted user's old role until it expires.
 */
export class UserRoles {
  readonly #lookup: (username: string) => Role | undefined;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { role: Role | undefined; until: number }>();

  constructor(options: UserRolesOptions) {
    this.#lookup = options.lookup;
    this.#ttlMs = options.ttlMs ?? ROLE_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  roleOf(username: string): Role | undefined {
    const now = this.#now();
    const hit = this.#cache.get(username);
    if (hit && now < hit.until) return hit.role;
    if (this.#cache.size >= MAX_ENTRIES) this.#sweep(now);
    const role = this.#lookup(username);
    this.#cache.set(username, { role, until: now + this.#ttlMs });
    return role;
  }

  /** A verified JWT's principal with the role its user has now; undefined when the user no longer exists. */
  current(principal: Principal | undefined): Principal | undefined {
    if (!principal) return undefined;
    const role = this.roleOf(principal.user);
    return role === undefined ? undefined : { ...principal, role };
  }

  #sweep(now: number): void {
    for (const [user, entry] of this.#cache) if (now >= entry.until) this.#cache.delete(user);
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
  }
}
