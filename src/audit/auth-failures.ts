// Failed and refused authentication, folded so that a flood of bad credentials cannot grow the audit log
// without bound, while the log stays append-only (no row is ever updated to bump a counter):
// - per minute, the first failure of each (type, transport, source address, reason, actor) is written at once;
// - its repeats in that minute are counted in memory and written as one row with their `count` when the
//   minute ends (or the server closes);
// - at most MAX_KEYS distinct ones per minute: beyond, failures fold into one row per type and reason
//   with source "*". So a minute adds at most about 2 × MAX_KEYS rows, however many failures come.
import type { AuditActor, AuditLog, AuditTransport } from "./audit-log.js";

/** One failed (`auth.failure`) or refused (`auth.denied`, the wrong role) authentication. */
export interface AuthFailure {
  type: "auth.failure" | "auth.denied";
  transport: AuditTransport;
  /** The client's address. */
  source: string;
  /** Why: missing_credentials, invalid_credentials, auth_timeout, wrong_password, role. */
  reason: string;
  /** The credential presented, reduced by `credentialHint` before it is stored; never stored itself. */
  token?: string | undefined;
  /** For a password login, the username tried (stored as the credential `user:NAME`). */
  username?: string | undefined;
  /** The principal refused (auth.denied); anonymous otherwise. */
  actor?: AuditActor;
  /** The route or call refused. */
  target?: string | undefined;
}

export const MAX_KEYS = 1000;
const MINUTE_MS = 60_000;
/** Distinct credentials a folded row names. */
const MAX_CREDENTIALS = 10;

/**
 * What may be kept of a presented credential: an API key's id (`api-key:<id>`, the public part before
 * its secret), "jwt" for a token, "unknown" for anything else. Never the secret.
 */
export function credentialHint(token: string | undefined): string | null {
  if (!token) return null;
  const key = /^inf_([A-Za-z0-9]{12})_/.exec(token);
  if (key) return `api-key:${key[1]}`;
  if (token.startsWith("inf_")) return "api-key:malformed";
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token) ? "jwt" : "unknown";
}

interface Pending {
  failure: AuthFailure;
  source: string;
  repeats: number;
  credentials: Set<string>;
  firstRepeatMs: number;
  lastMs: number;
}

export class AuthFailureLog {
  private minute = -1;
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: AuditLog, private readonly now: () => number = Date.now, private readonly maxKeys = MAX_KEYS) {}

  record(failure: AuthFailure): void {
    const now = this.now();
    const minute = Math.floor(now / MINUTE_MS);
    if (minute !== this.minute) {
      this.flush();
      this.minute = minute;
    }
    const actor = failure.actor?.actor ?? "anonymous";
    let key = `${failure.type}|${failure.transport}|${failure.source}|${failure.reason}|${actor}`;
    let source = failure.source;
    if (!this.pending.has(key) && this.pending.size >= this.maxKeys) {
      key = `${failure.type}|*|${failure.reason}`;
      source = "*";
    }
    const credential = failure.username !== undefined ? `user:${failure.username.slice(0, 128)}` : credentialHint(failure.token);
    const seen = this.pending.get(key);
    if (seen) {
      if (seen.repeats === 0) seen.firstRepeatMs = now;
      seen.repeats++;
      seen.lastMs = now;
      if (credential && seen.credentials.size < MAX_CREDENTIALS) seen.credentials.add(credential);
      return;
    }
    this.pending.set(key, { failure, source, repeats: 0, credentials: new Set(), firstRepeatMs: now, lastMs: now });
    this.write(failure, source, 1, credential, source === "*" ? { overflow: true } : {}, now);
    this.arm(minute);
  }

  /** Writes the repeats counted so far, one row each, and starts afresh. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending.values()) {
      if (p.repeats === 0) continue;
      const credentials = [...p.credentials];
      this.write(p.failure, p.source, p.repeats, credentials[0] ?? null, {
        repeated: true, first_repeat: new Date(p.firstRepeatMs).toISOString(), credentials, ...(p.source === "*" ? { overflow: true } : {}),
      }, p.lastMs);
    }
    this.pending.clear();
  }

  private write(f: AuthFailure, source: string, count: number, credential: string | null, details: Record<string, unknown>, at: number): void {
    this.log.record({
      type: f.type, transport: f.transport, source, target: f.target, count,
      actor: f.actor?.actor ?? "anonymous", role: f.actor?.role ?? null, credential: f.actor?.credential ?? credential,
      details: { reason: f.reason, ...details },
    }, at);
  }

  private arm(minute: number): void {
    if (this.timer) return;
    // Not holding the process open: a server that exits flushes on close instead.
    this.timer = setTimeout(() => this.flush(), Math.max(0, (minute + 1) * MINUTE_MS - this.now()) + 5);
    this.timer.unref();
  }
}
