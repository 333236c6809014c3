// What an OpenAI batch (`/v1/batches`) adds to a batch of the engine: its endpoint, input file,
// window and metadata, when it was asked to cancel or expired, and once its output and error files are
// written, their ids (table `openai_batches`, component "openai-batch", one row per engine batch).
//
// The engine decides when a batch ends (batch-store.ts); this row decides its OpenAI status from that:
//   engine queued/running                 → in_progress
//   engine completed/failed, files pending → finalizing   → completed once `finalized_ms` is set
//   engine cancelled, files pending        → cancelling   → cancelled   (expired, when it ran out of time)
import type Database from "better-sqlite3";
import { migrate } from "../store/database.js";
import type { BatchStatus } from "./batch-store.js";

const MIGRATIONS = [
  `CREATE TABLE openai_batches (
     id TEXT PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
     endpoint TEXT NOT NULL,
     input_file_id TEXT NOT NULL,
     completion_window TEXT NOT NULL,
     metadata TEXT,
     expires_ms INTEGER NOT NULL,
     cancelling_ms INTEGER,
     expired_ms INTEGER,
     finalized_ms INTEGER,
     output_file_id TEXT,
     error_file_id TEXT,
     usage TEXT
   ) STRICT;`,
];

/** Token totals over a batch's successful items, in OpenAI's batch `usage` terms. */
export interface BatchUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

/** An OpenAI batch: its own fields and those of its engine batch. */
export interface OpenaiBatch {
  id: string;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  expiresMs: number;
  cancellingMs: number | null;
  expiredMs: number | null;
  finalizedMs: number | null;
  outputFileId: string | null;
  errorFileId: string | null;
  usage: BatchUsage | null;
  /** The engine batch's status, creation and end times, owner and size. */
  engineStatus: BatchStatus;
  createdMs: number;
  endedMs: number | null;
  owner: string;
  total: number;
}

interface Row {
  id: string;
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  metadata: string | null;
  expires_ms: number;
  cancelling_ms: number | null;
  expired_ms: number | null;
  finalized_ms: number | null;
  output_file_id: string | null;
  error_file_id: string | null;
  usage: string | null;
  status: BatchStatus;
  created_ms: number;
  completed_ms: number | null;
  owner: string;
  total: number;
}

const toBatch = (r: Row): OpenaiBatch => ({
  id: r.id, endpoint: r.endpoint, inputFileId: r.input_file_id, completionWindow: r.completion_window,
  metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as Record<string, string>), expiresMs: r.expires_ms,
  cancellingMs: r.cancelling_ms, expiredMs: r.expired_ms, finalizedMs: r.finalized_ms, outputFileId: r.output_file_id,
  errorFileId: r.error_file_id, usage: r.usage === null ? null : (JSON.parse(r.usage) as BatchUsage), engineStatus: r.status,
  createdMs: r.created_ms, endedMs: r.completed_ms, owner: r.owner, total: r.total,
});

const SELECT = `SELECT o.*, b.status, b.created_ms, b.completed_ms, b.owner, b.total FROM openai_batches o JOIN batches b ON b.id = o.id`;
const ACTIVE = `(SELECT status FROM batches WHERE id = @id) IN ('queued', 'running')`;

/** OpenAI batches; needs the engine's tables (create the BatchStore first). Methods join the caller's transaction. */
export class OpenaiBatchStore {
  private readonly stmt;

  constructor(db: Database.Database) {
    migrate(db, "openai-batch", MIGRATIONS);
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO openai_batches (id, endpoint, input_file_id, completion_window, metadata, expires_ms)
         VALUES (@id, @endpoint, @input_file_id, @completion_window, @metadata, @expires_ms)`,
      ),
      get: db.prepare<[string], Row>(`${SELECT} WHERE o.id = ?`),
      list: db.prepare<[{ owner: string | null; after: string | null; limit: number }], Row>(
        `${SELECT} WHERE (@owner IS NULL OR b.owner = @owner)
           AND (@after IS NULL OR o.rowid < (SELECT rowid FROM openai_batches WHERE id = @after))
         ORDER BY o.rowid DESC LIMIT @limit`,
      ),
      cancelling: db.prepare(`UPDATE openai_batches SET cancelling_ms = @now WHERE id = @id AND cancelling_ms IS NULL AND ${ACTIVE}`),
      expired: db.prepare(`UPDATE openai_batches SET expired_ms = @now WHERE id = @id AND expired_ms IS NULL AND ${ACTIVE}`),
      finalize: db.prepare(
        `UPDATE openai_batches SET finalized_ms = @now, output_file_id = @output, error_file_id = @error, usage = @usage
         WHERE id = @id AND finalized_ms IS NULL`,
      ),
      unfinalized: db.prepare<[], { id: string }>(
        `SELECT o.id FROM openai_batches o JOIN batches b ON b.id = o.id
         WHERE o.finalized_ms IS NULL AND b.status IN ('completed', 'failed', 'cancelled') ORDER BY o.rowid`,
      ),
      overdue: db.prepare<[number], { id: string }>(
        `SELECT o.id FROM openai_batches o JOIN batches b ON b.id = o.id
         WHERE b.status IN ('queued', 'running') AND o.expires_ms <= ? ORDER BY o.rowid`,
      ),
    };
  }

  insert(b: { id: string; endpoint: string; inputFileId: string; completionWindow: string; metadata: Record<string, string> | null; expiresMs: number }): void {
    this.stmt.insert.run({
      id: b.id, endpoint: b.endpoint, input_file_id: b.inputFileId, completion_window: b.completionWindow,
      metadata: b.metadata === null ? null : JSON.stringify(b.metadata), expires_ms: b.expiresMs,
    });
  }

  get(id: string): OpenaiBatch | undefined {
    const row = this.stmt.get.get(id);
    return row && toBatch(row);
  }

  /** Newest first, after the batch `after` (a cursor); `owner` undefined lists everyone's. */
  list(owner: string | undefined, after: string | undefined, limit: number): OpenaiBatch[] {
    return this.stmt.list.all({ owner: owner ?? null, after: after ?? null, limit }).map(toBatch);
  }

  /** Records a cancel request on an active batch (call in the transaction that cancels the engine batch). */
  markCancelling(id: string, now = Date.now()): void {
    this.stmt.cancelling.run({ id, now });
  }

  /** Records that an active batch ran out of time (call in the transaction that cancels the engine batch). */
  markExpired(id: string, now = Date.now()): void {
    this.stmt.expired.run({ id, now });
  }

  /** Sets the output files of an ended batch, once; false when it was already finalized. */
  finalize(id: string, files: { output: string | null; error: string | null; usage: BatchUsage }, now = Date.now()): boolean {
    return this.stmt.finalize.run({ id, now, output: files.output, error: files.error, usage: JSON.stringify(files.usage) }).changes === 1;
  }

  /** Batches that ended but whose files are not written yet (the engine ended them; a crash may have come between). */
  unfinalized(): string[] {
    return this.stmt.unfinalized.all().map((r) => r.id);
  }

  /** Active batches whose completion window has passed. */
  overdue(now = Date.now()): string[] {
    return this.stmt.overdue.all(now).map((r) => r.id);
  }
}
