import type { Principal, Role } from "./principal.js";
import type { Awaitable } from "./stores.js";

export interface UserRolesOptions {
  /** The user's role in the user store now, or undefined when there is no such user (later, from Redis). */
  lookup: (username: string) => Awaitable<Role | undefined>;
  /** How long an answer is reused; a demotion or deletion takes effect within this time. */
  ttlMs?: number;
  now?: () => number;
}

/**
 * Long enough to spare the database a read per request, short enough that a demotion bites quickly. With
 * Redis a change is announced to every replica at once (auth-channel.ts), and this only bounds a lost message.
 */
export const ROLE_TTL_MS = 5000;
/** Entries kept before the expired ones are swept (only tokens this server signed reach the cache). */
const MAX_ENTRIES = 10_000;

/**
 * The role each JWT user has now. A JWT proves who its holder is; what they may do is read from the user
 * store at request time (the CLI may change it from another process, so answers are kept only briefly),
 * never taken from the token, which would keep a demoted or deleted user's old role until it expires.
 */
export class UserRoles {
  readonly #lookup: (username: string) => Awaitable<Role | undefined>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { role: Role | undefined; until: number }>();
  #generation = 0;

  constructor(options: UserRolesOptions) {
    this.#lookup = options.lookup;
    this.#ttlMs = options.ttlMs ?? ROLE_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  /** The role now: at once from the cache or a synchronous store, later from Redis (whose failure is thrown). */
  roleOf(username: string): Awaitable<Role | undefined> {
    const now = this.#now();
    const hit = this.#cache.get(username);
    if (hit && now < hit.until) return hit.role;
    if (this.#cache.size >= MAX_ENTRIES) this.#sweep(now);
    const role = this.#lookup(username);
    if (!(role instanceof Promise)) {
      this.#cache.set(username, { role, until: now + this.#ttlMs });
      return role;
    }
    const generation = this.#generation;
    return role.then((r) => {
      // Not cached when a change was announced meanwhile: the answer may predate it.
      if (generation === this.#generation) this.#cache.set(username, { role: r, until: now + this.#ttlMs });
      return r;
    });
  }

  /** A verified JWT's principal with the role its user has now; undefined when the user no longer exists. */
  current(principal: Principal | undefined): Awaitable<Principal | undefined> {
    if (!principal) return undefined;
    const role = this.roleOf(principal.user);
    const withRole = (r: Role | undefined) => (r === undefined ? undefined : { ...principal, role: r });
    return role instanceof Promise ? role.then(withRole) : withRole(role);
  }

  /** Forgets one user's role (it was changed or the user deleted, here or on another replica). */
  invalidate(username: string): void {
    this.#generation++;
    this.#cache.delete(username);
  }

  /** Forgets every role. */
  clear(): void {
    this.#generation++;
    this.#cache.clear();
  }

  #sweep(now: number): void {
    for (const [user, entry] of this.#cache) if (now >= entry.until) this.#cache.delete(user);
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
  }
}
