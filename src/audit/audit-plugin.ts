// The audit log in the app: `app.audit` for every transport, `request.audit(...)` for routes, the
// start-up record of the configuration, and retention (pruned at start and daily).
import type Database from "better-sqlite3";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { actorOf, AuditLog, SYSTEM_ACTOR, type AuditEvent, type AuditInput, type AuditQuery, type AuditType } from "./audit-log.js";
import { AuthFailureLog, type AuthFailure } from "./auth-failures.js";
import { redactConfig } from "./redact-config.js";

/** What the transports record through. */
export interface AuditTrail {
  record(event: AuditInput): void;
  /** A failed or refused authentication (folded per source and minute, see auth-failures.ts). */
  failure(failure: AuthFailure): void;
  query(q: AuditQuery): AuditEvent[];
  /** Writes folded failures now (tests, shutdown). */
  flush(): void;
}

declare module "fastify" {
  interface FastifyInstance {
    audit: AuditTrail;
  }
  interface FastifyRequest {
    /** Records an event done by this request's principal, from its address. */
    audit(type: AuditType, target?: string, details?: Record<string, unknown>): void;
  }
}

export interface AuditPluginOptions {
  db: Database.Database;
  /** This process's name (config replicaId): with Redis each replica keeps its own log. */
  replica: string;
  /** Days events are kept; 0 keeps them forever (config auditRetentionDays). */
  retentionDays: number;
  /** The configuration recorded at start, secrets redacted. */
  config: Readonly<Record<string, unknown>>;
}

const DAY_MS = 86_400_000;

async function auditPlugin(app: FastifyInstance, opts: AuditPluginOptions): Promise<void> {
  const log = new AuditLog(opts.db, opts.replica, (err) => app.log.error({ err }, "audit event could not be written"));
  const failures = new AuthFailureLog(log);
  const prune = () => {
    try {
      const removed = log.prune(opts.retentionDays);
      if (removed > 0) log.record({ type: "audit.prune", ...SYSTEM_ACTOR, transport: "system", details: { removed, retention_days: opts.retentionDays } });
    } catch (err) {
      app.log.error({ err }, "audit log pruning failed");
    }
  };
  prune();
  const daily = opts.retentionDays > 0 ? setInterval(prune, DAY_MS).unref() : undefined;
  log.record({ type: "config.startup", ...SYSTEM_ACTOR, transport: "system", details: { config: redactConfig(opts.config) } });

  app.decorate("audit", {
    record: (event: AuditInput) => void log.record(event),
    failure: (failure: AuthFailure) => failures.record(failure),
    query: (q: AuditQuery) => log.query(q),
    flush: () => failures.flush(),
  } satisfies AuditTrail);
  app.decorateRequest("audit", function (this: FastifyRequest, type: AuditType, target?: string, details?: Record<string, unknown>) {
    log.record({ type, ...actorOf(this.principal), transport: "http", source: this.ip, target, ...(details ? { details } : {}) });
  });
  // Registered after the database's own close hook, so it runs first (onClose hooks run last-in, first-out).
  app.addHook("onClose", async () => {
    clearInterval(daily);
    failures.flush();
    log.close();
  });
}

/** The audit log (src/audit/audit-log.ts) as `app.audit` and `request.audit`. */
export default fp(auditPlugin, { name: "inferno-audit", fastify: "5.x" });
