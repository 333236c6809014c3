// The role of a JWT user is read at request time, kept only briefly (src/auth/user-roles.ts). Needs no
// model and no server: the user store is a map the test edits, the clock one it moves.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Principal, Role } from "../../src/auth/principal.js";
import { ROLE_TTL_MS, UserRoles } from "../../src/auth/user-roles.js";

function setup() {
  const store = new Map<string, Role>([["dana", "admin"]]);
  const clock = { t: 1_000_000, now: () => clock.t };
  let reads = 0;
  const roles = new UserRoles({ lookup: (u) => (reads++, store.get(u)), now: clock.now });
  return { store, clock, roles, reads: () => reads };
}

const signedAsAdmin = (user: string): Principal => ({ user, role: "admin", via: "jwt" });

describe("UserRoles", () => {
  it("answers from the store, then from its cache until ROLE_TTL_MS has passed", () => {
    const { store, clock, roles, reads } = setup();
    assert.equal(roles.roleOf("dana"), "admin");
    store.set("dana", "user");
    clock.t += ROLE_TTL_MS - 1;
    assert.equal(roles.roleOf("dana"), "admin", "cached");
    assert.equal(reads(), 1);
    clock.t += 1;
    assert.equal(roles.roleOf("dana"), "user", "re-read once the answer is ROLE_TTL_MS old");
    assert.equal(reads(), 2);
  });

  it("replaces a token's signed role with the current one, and refuses a user who is gone", () => {
    const { store, clock, roles } = setup();
    store.set("frank", "user");
    assert.deepEqual(roles.current(signedAsAdmin("frank")), { user: "frank", role: "user", via: "jwt" });
    assert.equal(roles.current(signedAsAdmin("ghost")), undefined);
    assert.equal(roles.current(undefined), undefined);
    store.delete("frank");
    clock.t += ROLE_TTL_MS;
    assert.equal(roles.current(signedAsAdmin("frank")), undefined, "deleted: its tokens stop working");
  });
});
