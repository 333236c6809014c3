import os from "node:os";
import { AuditLog, CLI_ACTOR, type AuditType } from "../audit/audit-log.js";
import { ApiKeyStore, checkRole } from "../auth/api-keys.js";
import type { Role } from "../auth/principal.js";
import { RedisApiKeyStore } from "../auth/redis-api-keys.js";
import { RedisUserStore } from "../auth/redis-users.js";
import type { ApiKeys, Users } from "../auth/stores.js";
import { UserStore } from "../auth/users.js";
import { loadConfig } from "../config/config.js";
import { parseKeepAlive } from "../core/duration.js";
import { InfernoError } from "../errors/catalogue.js";
import { SharedRedis } from "../shared/redis.js";
import { openDatabase } from "../store/database.js";

/** Bad arguments to `inferno security ...`; the CLI turns it into exit code 2. */
export class SecurityUsageError extends Error {}

export interface SecurityOptions {
  json?: boolean;
  user?: string;
  name?: string;
  role?: string;
  expiresIn?: string;
  username?: string;
  password?: string;
}

export const SECURITY_USAGE = `usage:
  inferno security api-key create --user USER --name NAME [--role admin|user] [--expires-in DURATION] [--json]
  inferno security api-key list [--json]
  inferno security api-key revoke ID
  inferno security user create --username U --password P|- [--role admin|user] [--json]
  inferno security user list [--json]
  inferno security user set-role USERNAME --role admin|user
  inferno security user delete USERNAME`;

const usage = (message: string) => new SecurityUsageError(`${message}\n${SECURITY_USAGE}`);

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw usage(`${flag} is required`);
  return value;
}

function role(value: string | undefined): Role {
  try {
    return checkRole(value ?? "user");
  } catch {
    throw usage(`--role must be admin or user, not '${value}'`);
  }
}

const date = (s: number | null) => (s === null ? "-" : new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"));

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

/** The password from stdin (for `--password -`, so it stays out of shell history), less one trailing newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/**
 * `inferno security api-key|user ...`: manages credentials in the data dir's database, or in Redis with
 * redisUrl (flag, env or config file, as the server reads it); the server need not run. In Redis a
 * revocation, role change or deletion is announced to every running replica at once.
 */
export async function security(args: string[], options: SecurityOptions, flags: Record<string, unknown>): Promise<void> {
  const [group, action, target, ...extra] = args;
  if (extra.length > 0) throw usage(`unexpected argument '${extra[0]}'`);
  const run = group === "api-key" ? apiKeyCommand : group === "user" ? userCommand : undefined;
  if (!run) throw usage(group === undefined ? "missing api-key or user" : `unknown security command '${group}'`);
  // Arguments are checked before the database is opened, so a typo creates no data dir.
  const command = run(action, target, options);
  const config = loadConfig({ flags });
  // Changes are audited in the data dir's database, with Redis too (each replica keeps its own log).
  const db = openDatabase(config.dataDir);
  const audit = cliAudit(new AuditLog(db, "cli", (err) => console.error(`warning: audit event not written: ${(err as Error).message}`)));
  try {
    if (config.redisUrl) {
      const redis = new SharedRedis({ url: config.redisUrl, log: quiet });
      const keys = new RedisApiKeyStore(redis);
      try {
        await redis.waitReady();
        await command({ keys, users: new RedisUserStore(redis), audit });
      } finally {
        await keys.close();
        await redis.close();
      }
      return;
    }
    await command({ keys: new ApiKeyStore(db), users: new UserStore(db), audit });
  } finally {
    db.close();
  }
}

/** Records as the actor "cli", naming the operating-system user who ran it. */
function cliAudit(log: AuditLog): Audit {
  let osUser: string | undefined;
  try {
    osUser = os.userInfo().username;
  } catch {
    // No passwd entry for this uid (some containers): the event still says it came from the CLI.
  }
  return (type, target, details) => void log.record({ type, ...CLI_ACTOR, transport: "cli", source: "cli", target, details: { ...details, ...(osUser ? { os_user: osUser } : {}) } });
}

// waitReady's error says what went wrong; the connection's own retries need not be logged.
const quiet = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

type Audit = (type: AuditType, target: string, details?: Record<string, unknown>) => void;
type Command = (stores: { keys: ApiKeys; users: Users; audit: Audit }) => void | Promise<void>;

function apiKeyCommand(action: string | undefined, target: string | undefined, o: SecurityOptions): Command {
  if (action === "create") {
    if (target !== undefined) throw usage(`unexpected argument '${target}'`);
    const user = required(o.user, "--user");
    const name = required(o.name, "--name");
    const keyRole = role(o.role);
    let expiresInMs: number | undefined;
    if (o.expiresIn !== undefined) {
      const ms = parseKeepAlive(o.expiresIn);
      if (typeof ms !== "number" || ms <= 0) throw usage(`--expires-in must be a positive duration (seconds, or such as 30m, 720h), not '${o.expiresIn}'`);
      expiresInMs = ms;
    }
    return async ({ keys, audit }) => {
      const k = await keys.create({ user, name, role: keyRole, ...(expiresInMs !== undefined ? { expiresInMs } : {}) });
      audit("key.create", k.id, { user: k.user, name: k.name, role: k.role, expires_at: k.expires_at });
      if (o.json) {
        console.log(JSON.stringify({ id: k.id, key: k.key, user: k.user, name: k.name, role: k.role, expires_at: k.expires_at }));
        return;
      }
      const expiry = k.expires_at === null ? "never expires" : `expires ${date(k.expires_at)}`;
      console.log(`Created API key ${k.id} for ${k.user} (${k.name}, role ${k.role}, ${expiry}). Copy it now; it will not be shown again:`);
      console.log(k.key);
    };
  }
  if (action === "list") {
    if (target !== undefined) throw usage(`unexpected argument '${target}'`);
    return async (stores) => {
      const keys = await stores.keys.list();
      if (o.json) return console.log(JSON.stringify(keys, null, 2));
      if (keys.length === 0) return console.log("no API keys (create one with: inferno security api-key create --user USER --name NAME)");
      const status = (k: (typeof keys)[number]) =>
        k.revoked_at !== null ? "revoked" : k.expires_at !== null && k.expires_at * 1000 <= Date.now() ? "expired" : "active";
      table(
        ["ID", "USER", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES", "LAST USED"],
        keys.map((k) => [k.id, k.user, k.name, k.role, status(k), date(k.created), date(k.expires_at), date(k.last_used_at)]),
      );
    };
  }
  if (action === "revoke") {
    const id = required(target, "the key ID");
    return async ({ keys, audit }) => {
      const k = await keys.revoke(id);
      if (!k) throw new InfernoError("NOT_FOUND", `no API key with id '${id}'`);
      audit("key.revoke", k.id, { user: k.user, name: k.name });
      if (o.json) return console.log(JSON.stringify(k));
      console.log(`revoked API key ${k.id} (${k.user}, ${k.name})`);
    };
  }
  throw usage(action === undefined ? "missing create, list or revoke" : `unknown api-key command '${action}'`);
}

function userCommand(action: string | undefined, target: string | undefined, o: SecurityOptions): Command {
  if (action === "create") {
    if (target !== undefined) throw usage(`unexpected argument '${target}'`);
    const username = required(o.username, "--username");
    const given = required(o.password, "--password");
    const userRole = role(o.role);
    return async ({ users, audit }) => {
      const password = given === "-" ? await readStdin() : given;
      const u = await users.create(username, password, userRole);
      audit("user.create", u.username, { role: u.role });
      if (o.json) return console.log(JSON.stringify(u));
      console.log(`created user ${u.username} (role ${u.role})`);
    };
  }
  if (action === "list") {
    if (target !== undefined) throw usage(`unexpected argument '${target}'`);
    return async (stores) => {
      const users = await stores.users.list();
      if (o.json) return console.log(JSON.stringify(users, null, 2));
      if (users.length === 0) return console.log("no users (create one with: inferno security user create --username U --password -)");
      table(["USERNAME", "ROLE", "CREATED"], users.map((u) => [u.username, u.role, date(u.created)]));
    };
  }
  if (action === "set-role") {
    const username = required(target, "the USERNAME");
    const newRole = role(required(o.role, "--role"));
    return async ({ users, audit }) => {
      const before = await users.get(username);
      const u = await users.setRole(username, newRole);
      if (!u) throw new InfernoError("NOT_FOUND", `no user '${username}'`);
      audit("user.role", u.username, { role: u.role, ...(before ? { previous_role: before.role } : {}) });
      console.log(`user ${u.username} now has role ${u.role} (tokens already issued follow within seconds)`);
    };
  }
  if (action === "delete") {
    const username = required(target, "the USERNAME");
    return async ({ users, audit }) => {
      if (!(await users.delete(username))) throw new InfernoError("NOT_FOUND", `no user '${username}'`);
      audit("user.delete", username);
      console.log(`deleted user ${username}`);
    };
  }
  throw usage(action === undefined ? "missing create, list, set-role or delete" : `unknown user command '${action}'`);
}
