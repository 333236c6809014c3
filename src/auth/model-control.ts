// Who may change which models are in memory, and how: the one rule every route and transport asks.
//
// A model in memory is shared by every user of the server. Unloading it, reloading it with other options
// or choosing the options it loads with changes it for everyone (their next request waits for a load,
// or gets another context size), so only an admin may do that; `POST /models/{id}/load|unload` are
// admin routes for the same reason. A user's request uses a model as it is, loading it with its default
// options when it is not loaded. A user's keep-alive only says how long the model stays after *that*
// request: it may keep it longer than the server's `keepAlive`, never shorter (a short one, or 0, would
// unload the model at once for everyone else, the same door as an unload).
import { InfernoError } from "../errors/catalogue.js";
import type { Principal } from "./principal.js";

/** True for admins, and for everyone when auth is off (requests then act as the anonymous admin). */
export const controlsModels = (principal: Principal | undefined): boolean => principal?.role === "admin";

/** Throws 403 AUTHORIZATION_FAILED unless the principal may do `action` (e.g. "unloading model 'x'"). */
export function requireModelControl(principal: Principal | undefined, action: string, details: Record<string, unknown> = {}): void {
  if (controlsModels(principal)) return;
  const who = principal ? `'${principal.user}' has '${principal.role}'` : "the request has no principal";
  throw new InfernoError("AUTHORIZATION_FAILED", `${action} needs the admin role; ${who}`, { required_role: "admin", ...details });
}

/**
 * The keep-alive (ms; null: forever; undefined: leave the server's default) that a request's own
 * `keep_alive` may set once the request is served. An admin's applies as asked, 0 included. A user's
 * applies only when it keeps the model at least as long as the server's `keepAlive` (`serverDefault`);
 * a shorter one, 0 included, leaves the default.
 */
export function keepAliveFor(principal: Principal | undefined, asked: number | null | undefined, serverDefault: number | null): number | null | undefined {
  if (asked === undefined || controlsModels(principal)) return asked;
  if (asked === null) return null;
  return serverDefault !== null && asked >= serverDefault ? asked : undefined;
}
