// The audit log: security-relevant events, append-only, in the data dir's database (src/store/database.ts).
// Rows are only ever inserted; the one way out is pruning by age (config auditRetentionDays). Triggers
// refuse any UPDATE and any DELETE of a row younger than a day, so a bug elsewhere cannot rewrite history.
import type Database from "better-sqlite3";
import type { Principal, Role } from "../auth/principal.js";
import { migrate } from "../store/database.js";

const MIGRATIONS = [
  // AUTOINCREMENT: ids only ever grow, even after pruning, so `after` is a stable cursor.
  `CREATE TABLE audit_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts_ms INTEGER NOT NULL,
     type TEXT NOT NULL,
     actor TEXT NOT NULL,
     actor_role TEXT,
     credential TEXT,
     transport TEXT NOT NULL,
     source TEXT,
     target TEXT,
     count INTEGER NOT NULL DEFAULT 1,
     details TEXT NOT NULL DEFAULT '{}',
     replica TEXT NOT NULL
   ) STRICT;
   CREATE INDEX audit_events_ts ON audit_events (ts_ms);
   CREATE INDEX audit_events_type ON audit_events (type, id);
   CREATE INDEX audit_events_actor ON audit_events (actor, id);
   CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
     BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
   CREATE TRIGGER audit_events_keep_recent BEFORE DELETE ON audit_events
     WHEN OLD.ts_ms > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 86400000
     BEGIN SELECT RAISE(ABORT, 'audit events younger than a day are never deleted'); END;`,
];

/** Every kind of event the log records (README, Audit log). */
export const AUDIT_TYPES = [
  "auth.failure", "auth.denied",
  "key.create", "key.revoke",
  "user.create", "user.delete", "user.role",
  "model.register", "model.delete", "model.load", "model.unload", "model.pull",
  "batch.cancel",
  "config.startup", "audit.prune",
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

/** How the actor reached the server. */
export type AuditTransport = "http" | "websocket" | "grpc" | "ipc" | "mcp" | "cli" | "system";

/** Who did it: a principal's user and role, or "cli" / "system"; the credential is a key id or "jwt", never a secret. */
export interface AuditActor {
  actor: string;
  role?: Role | null;
  credential?: string | null;
}

/** An event as a caller records it. */
export interface AuditInput extends AuditActor {
  type: AuditType;
  transport: AuditTransport;
  /** The client's address (or "ipc", "cli"). */
  source?: string | undefined;
  /** What it acted on: a key id, a user, a model id, a batch id. */
  target?: string | undefined;
  /** Repeats folded into this one row (failed auth, see auth-failures.ts). */
  count?: number;
  details?: Record<string, unknown>;
}

/** An event as stored and listed. */
export interface AuditEvent {
  id: number;
  time: string;
  type: AuditType;
  actor: string;
  actor_role: Role | null;
  credential: string | null;
  transport: AuditTransport;
  source: string | null;
  target: string | null;
  count: number;
  details: Record<string, unknown>;
  replica: string;
}

export interface AuditQuery {
  /** Exact types, or families ("auth" for auth.*). */
  types?: string[];
  actor?: string;
  sinceMs?: number;
  untilMs?: number;
  /** Only events with a larger id (the cursor). */
  after?: number;
  limit: number;
}

interface Row {
  id: number;
  ts_ms: number;
  type: AuditType;
  actor: string;
  actor_role: Role | null;
  credential: string | null;
  transport: AuditTransport;
  source: string | null;
  target: string | null;
  count: number;
  details: string;
  replica: string;
}

export const CLI_ACTOR: AuditActor = Object.freeze({ actor: "cli", role: null, credential: null });
export const SYSTEM_ACTOR: AuditActor = Object.freeze({ actor: "system", role: null, credential: null });
const DAY_MS = 86_400_000;

/** The actor of a principal; undefined (a request that never authenticated) is "anonymous". */
export function actorOf(principal: Principal | undefined): AuditActor {
  if (!principal) return { actor: "anonymous", role: null, credential: null };
  const credential = principal.via === "api-key" ? `api-key:${principal.keyId ?? "?"}` : principal.via;
  return { actor: principal.user, role: principal.role, credential };
}

// Caps on what a caller may put in a row: details come from requests (model names, usernames).
const MAX_TEXT = 256;
const MAX_DETAILS = 16 * 1024;
const clip = (v: string | null | undefined) => (v == null ? null : v.slice(0, MAX_TEXT));

/** The log of one database, as this replica writes it. */
export class AuditLog {
  private readonly insert: Database.Statement;
  private closed = false;

  constructor(private readonly db: Database.Database, private readonly replica: string, private readonly onError: (err: unknown) => void = () => undefined) {
    migrate(db, "audit", MIGRATIONS);
    this.insert = db.prepare(
      `INSERT INTO audit_events (ts_ms, type, actor, actor_role, credential, transport, source, target, count, details, replica)
       VALUES (@ts_ms, @type, @actor, @actor_role, @credential, @transport, @source, @target, @count, @details, @replica)`,
    );
  }

  /**
   * Appends one event and returns its id. Never throws: an audit write that fails (disk full, database
   * closed during shutdown) is reported to `onError`, and the action it describes is not undone.
   */
  record(event: AuditInput, now = Date.now()): number | undefined {
    if (this.closed) return undefined;
    try {
      let details = JSON.stringify(event.details ?? {});
      if (details.length > MAX_DETAILS) details = JSON.stringify({ truncated: true, bytes: details.length });
      const result = this.insert.run({
        ts_ms: now, type: event.type, actor: clip(event.actor) ?? "anonymous", actor_role: event.role ?? null, credential: clip(event.credential),
        transport: event.transport, source: clip(event.source), target: clip(event.target), count: event.count ?? 1, details, replica: this.replica,
      });
      return Number(result.lastInsertRowid);
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  /** Events matching the filters, oldest first (by id), at most `limit`. */
  query(q: AuditQuery): AuditEvent[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit };
    if (q.types && q.types.length > 0) {
      where.push(`(${q.types.map((t, i) => {
        params[`t${i}`] = t;
        return t.includes(".") ? `type = @t${i}` : `type LIKE @t${i} || '.%'`;
      }).join(" OR ")})`);
    }
    if (q.actor !== undefined) (where.push("actor = @actor"), (params.actor = q.actor));
    if (q.sinceMs !== undefined) (where.push("ts_ms >= @since"), (params.since = q.sinceMs));
    if (q.untilMs !== undefined) (where.push("ts_ms <= @until"), (params.until = q.untilMs));
    if (q.after !== undefined) (where.push("id > @after"), (params.after = q.after));
    const sql = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT @limit`;
    return this.db.prepare<[Record<string, unknown>], Row>(sql).all(params).map(toEvent);
  }

  /** Deletes events older than `days` (0 keeps everything); returns how many went. */
  prune(days: number, now = Date.now()): number {
    if (days <= 0 || this.closed) return 0;
    return this.db.prepare("DELETE FROM audit_events WHERE ts_ms < ?").run(now - days * DAY_MS).changes;
  }

  /** Later records are dropped (the database is about to close). */
  close(): void {
    this.closed = true;
  }
}

function toEvent(r: Row): AuditEvent {
  return {
    id: r.id, time: new Date(r.ts_ms).toISOString(), type: r.type, actor: r.actor, actor_role: r.actor_role, credential: r.credential,
    transport: r.transport, source: r.source, target: r.target, count: r.count, details: JSON.parse(r.details) as Record<string, unknown>, replica: r.replica,
  };
}
