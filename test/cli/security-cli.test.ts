// `inferno security ...` as users run it: built dist/src/cli.js in a child process, in a temp cwd, with no
// INFERNO_* variables inherited; each test gets its own data dir. Needs no model and no server.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiKeyStore } from "../../src/auth/api-keys.js";
import { UserStore } from "../../src/auth/users.js";
import { openDatabase } from "../../src/store/database.js";
import { runCli as runCliIn } from "../helpers/cli.js";
import { tempDir } from "../helpers/paths.js";

let work: string;
let cleanup: () => Promise<void>;
let count = 0;

before(async () => {
  ({ dir: work, cleanup } = await tempDir("inferno-security-cli-"));
});
after(() => cleanup());

const runCli = (args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) => runCliIn(args, { cwd: work, ...opts, stdin: opts.stdin ?? "" });

const newDataDir = () => path.join(work, `data${++count}`);

describe("inferno security api-key", () => {
  it("creates a key (--json), lists it without the key, revokes it, lists it revoked", async () => {
    const dataDir = newDataDir();
    const dd = ["--data-dir", dataDir];
    const created = await runCli(["security", "api-key", "create", "--user", "alice", "--name", "My API Key", "--role", "admin", "--expires-in", "1h", "--json", ...dd]);
    assert.equal(created.code, 0, created.stderr);
    const k = JSON.parse(created.stdout) as { id: string; key: string; user: string; name: string; role: string; expires_at: number };
    assert.deepEqual(Object.keys(k).sort(), ["expires_at", "id", "key", "name", "role", "user"]);
    assert.deepEqual([k.user, k.name, k.role], ["alice", "My API Key", "admin"]);
    assert.match(k.key, new RegExp(`^inf_${k.id}_[A-Za-z0-9_-]{43}$`));
    assert.ok(Math.abs(k.expires_at - (Date.now() / 1000 + 3600)) < 60);

    // The key works against the same database the server would open.
    const db = openDatabase(dataDir);
    try {
      assert.deepEqual(new ApiKeyStore(db).verify(k.key), { user: "alice", role: "admin", via: "api-key", keyId: k.id });
    } finally {
      db.close();
    }

    const listed = await runCli(["security", "api-key", "list", "--json", ...dd]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(!listed.stdout.includes(k.key.slice(17)), "list must not print the secret");
    const [entry] = JSON.parse(listed.stdout) as Array<{ id: string; user: string; revoked_at: number | null; last_used_at: number | null }>;
    assert.equal(entry?.id, k.id);
    assert.equal(entry?.revoked_at, null);
    assert.notEqual(entry?.last_used_at, null);

    const human = await runCli(["security", "api-key", "list", ...dd]);
    assert.match(human.stdout, new RegExp(`${k.id}\\s+alice\\s+My API Key\\s+admin\\s+active`));
    assert.ok(!human.stdout.includes(k.key.slice(17)));

    const revoked = await runCli(["security", "api-key", "revoke", k.id, ...dd]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`revoked API key ${k.id}`));
    const again = await runCli(["security", "api-key", "list", "--json", ...dd]);
    assert.equal(typeof (JSON.parse(again.stdout) as Array<{ revoked_at: unknown }>)[0]?.revoked_at, "number");
    assert.match((await runCli(["security", "api-key", "list", ...dd])).stdout, /revoked/);

    const unknown = await runCli(["security", "api-key", "revoke", "nosuchkey123", ...dd]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /NOT_FOUND: no API key with id 'nosuchkey123'/);
  });

  it("prints the key once in a sentence, the key on its own line; INFERNO_DATA_DIR picks the database", async () => {
    const dataDir = newDataDir();
    const r = await runCli(["security", "api-key", "create", "--user", "bob", "--name", "ci"], { env: { INFERNO_DATA_DIR: dataDir } });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /bob/);
    assert.match(lines[1]!, /^inf_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    assert.ok(existsSync(path.join(dataDir, "inferno.db")));
  });

  it("exits 2 on a bad role, a missing flag, a bad duration or an unknown subcommand, creating nothing", async () => {
    const dataDir = newDataDir();
    const dd = ["--data-dir", dataDir];
    const cases: Array<[string[], RegExp]> = [
      [["api-key", "create", "--user", "u", "--name", "n", "--role", "root"], /--role must be admin or user/],
      [["api-key", "create", "--user", "u"], /--name is required/],
      [["api-key", "create", "--user", "u", "--name", "n", "--expires-in", "soon"], /--expires-in/],
      [["api-key", "frob"], /unknown api-key command 'frob'/],
      [["api-key", "revoke"], /key ID is required/],
      [["user", "create", "--username", "u", "--password", "password1", "--role", "superuser"], /--role must be admin or user/],
      [["nope"], /unknown security command 'nope'/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["security", ...args, ...dd]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.ok(!existsSync(dataDir), "usage errors must not create the data dir");
  });
});

describe("inferno security user", () => {
  it("creates a user with the password from stdin, lists it, and refuses a duplicate", async () => {
    const dataDir = newDataDir();
    const dd = ["--data-dir", dataDir];
    const r = await runCli(["security", "user", "create", "--username", "carol", "--password", "-", "--role", "admin", ...dd], { stdin: "s3cret pass\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created user carol \(role admin\)/);

    const db = openDatabase(dataDir);
    try {
      const users = new UserStore(db);
      assert.deepEqual(await users.verify("carol", "s3cret pass"), { user: "carol", role: "admin", via: "jwt" });
      assert.equal(await users.verify("carol", "s3cret pass\n"), undefined);
    } finally {
      db.close();
    }

    const listed = await runCli(["security", "user", "list", ...dd]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /carol\s+admin/);
    const json = await runCli(["security", "user", "list", "--json", ...dd]);
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ username: string }>).map((u) => u.username), ["carol"]);

    const dup = await runCli(["security", "user", "create", "--username", "carol", "--password", "another one", ...dd]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    const short = await runCli(["security", "user", "create", "--username", "dave", "--password", "-", ...dd], { stdin: "short\n" });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 8 characters/);
  });

  it("changes a user's role with set-role (a demotion needs no new user)", async () => {
    const dd = ["--data-dir", newDataDir()];
    assert.equal((await runCli(["security", "user", "create", "--username", "erin", "--password", "-", "--role", "admin", ...dd], { stdin: "s3cret pass\n" })).code, 0);
    const demoted = await runCli(["security", "user", "set-role", "erin", "--role", "user", ...dd]);
    assert.equal(demoted.code, 0, demoted.stderr);
    assert.match(demoted.stdout, /user erin now has role user/);
    assert.match((await runCli(["security", "user", "list", ...dd])).stdout, /erin\s+user/);
    const missing = await runCli(["security", "user", "set-role", "nobody", "--role", "user", ...dd]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no user 'nobody'/);
    assert.equal((await runCli(["security", "user", "set-role", "erin", ...dd])).code, 2, "--role is required");
  });
});
