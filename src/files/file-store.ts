// Files of the OpenAI files API (batch inputs and batch outputs): bytes in `<dataDir>/files/<id>`,
// metadata in the SQLite table `files` (component "files").
//
// A file's bytes are written to a hidden `.<id>.part`, synced and renamed into place before its row
// is inserted, so a row always points to complete bytes. A crash can leave a `.part` or bytes with no
// row (never a row with no bytes); `sweep()` at start-up removes those. Deleting removes the row, then
// the bytes.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type Database from "better-sqlite3";
import { migrate } from "../store/database.js";

const MIGRATIONS = [
  `CREATE TABLE files (
     id TEXT PRIMARY KEY,
     filename TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     purpose TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     owner TEXT NOT NULL
   ) STRICT;
   CREATE INDEX files_owner ON files (owner, created_ms);`,
];

/** A stored file's metadata. */
export interface StoredFile {
  id: string;
  filename: string;
  bytes: number;
  purpose: string;
  createdMs: number;
  owner: string;
}

interface FileRow {
  id: string;
  filename: string;
  bytes: number;
  purpose: string;
  created_ms: number;
  owner: string;
}

const toFile = (r: FileRow): StoredFile => ({
  id: r.id, filename: r.filename, bytes: r.bytes, purpose: r.purpose, createdMs: r.created_ms, owner: r.owner,
});

export const newFileId = () => `file-${randomBytes(12).toString("base64url")}`;

export interface FileQuery {
  /** Undefined lists everyone's. */
  owner: string | undefined;
  purpose?: string | undefined;
  /** Start after this file id (in `order`). */
  after?: string | undefined;
  limit: number;
  order: "asc" | "desc";
}

/** Bytes being written into a new file; nothing is visible until its row is inserted with `FileStore.insert`. */
export class FileWriter {
  private bytes = 0;

  constructor(
    readonly id: string,
    private readonly handle: FileHandle,
    private readonly partPath: string,
    private readonly finalPath: string,
  ) {}

  async write(chunk: string | Buffer): Promise<void> {
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    await this.handle.write(data);
    this.bytes += data.length;
  }

  /** Syncs and renames the bytes into place; returns their size. */
  async finish(): Promise<number> {
    await this.handle.datasync();
    await this.handle.close();
    await rename(this.partPath, this.finalPath);
    return this.bytes;
  }

  /** Drops the bytes (written or finished) of a file whose row will not be inserted. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await rm(this.partPath, { force: true });
    await rm(this.finalPath, { force: true });
  }
}

/** What the files API needs from wherever file metadata lives (this SQLite store, or Redis: redis-file-store.ts). */
export interface FileBackend {
  get(id: string): StoredFile | undefined | Promise<StoredFile | undefined>;
  list(q: FileQuery): StoredFile[] | Promise<StoredFile[]>;
  add(input: { filename: string; purpose: string; owner: string; data: Buffer }): Promise<StoredFile>;
  read(id: string): Promise<Buffer>;
  path(id: string): string;
  delete(id: string): Promise<boolean>;
  /** Removes what a crash left behind; returns how many entries. */
  sweep(): number | Promise<number>;
}

/** Starts writing a new file's bytes in `dir` (as `.<id>.part` until finished). */
export async function createFileWriter(dir: string): Promise<FileWriter> {
  const id = newFileId();
  const partPath = path.join(dir, `.${id}.part`);
  return new FileWriter(id, await open(partPath, "wx", 0o600), partPath, path.join(dir, id));
}

/** Files and their bytes; row methods are synchronous and join the caller's transaction. */
export class FileStore implements FileBackend {
  private readonly stmt;

  constructor(db: Database.Database, private readonly dir: string) {
    migrate(db, "files", MIGRATIONS);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const list = (order: "ASC" | "DESC") =>
      db.prepare<[Record<string, unknown>], FileRow>(
        `SELECT * FROM files WHERE (@owner IS NULL OR owner = @owner) AND (@purpose IS NULL OR purpose = @purpose)
           AND (@after IS NULL OR rowid ${order === "ASC" ? ">" : "<"} (SELECT rowid FROM files WHERE id = @after))
         ORDER BY rowid ${order} LIMIT @limit`,
      );
    this.stmt = {
      insert: db.prepare("INSERT INTO files (id, filename, bytes, purpose, created_ms, owner) VALUES (@id, @filename, @bytes, @purpose, @created_ms, @owner)"),
      get: db.prepare<[string], FileRow>("SELECT * FROM files WHERE id = ?"),
      ids: db.prepare<[], { id: string }>("SELECT id FROM files"),
      delete: db.prepare("DELETE FROM files WHERE id = ?"),
      listAsc: list("ASC"),
      listDesc: list("DESC"),
    };
  }

  /** Removes what a crash left behind: partial writes and bytes no row points to. Call before serving. */
  sweep(): number {
    const known = new Set(this.stmt.ids.all().map((r) => r.id));
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      if (known.has(name)) continue;
      rmSync(path.join(this.dir, name), { force: true, recursive: true });
      removed++;
    }
    return removed;
  }

  /** Starts writing a new file's bytes. */
  create(): Promise<FileWriter> {
    return createFileWriter(this.dir);
  }

  /** Inserts a written file's row (in the caller's transaction, if any). */
  insert(file: Omit<StoredFile, "createdMs">, now = Date.now()): StoredFile {
    this.stmt.insert.run({ id: file.id, filename: file.filename, bytes: file.bytes, purpose: file.purpose, created_ms: now, owner: file.owner });
    return { ...file, createdMs: now };
  }

  /** Stores a whole file at once (an upload). */
  async add(input: { filename: string; purpose: string; owner: string; data: Buffer }): Promise<StoredFile> {
    const writer = await this.create();
    try {
      await writer.write(input.data);
      const bytes = await writer.finish();
      return this.insert({ id: writer.id, filename: input.filename, bytes, purpose: input.purpose, owner: input.owner });
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  get(id: string): StoredFile | undefined {
    const row = this.stmt.get.get(id);
    return row && toFile(row);
  }

  list(q: FileQuery): StoredFile[] {
    const params = { owner: q.owner ?? null, purpose: q.purpose ?? null, after: q.after ?? null, limit: q.limit };
    return (q.order === "asc" ? this.stmt.listAsc : this.stmt.listDesc).all(params).map(toFile);
  }

  path(id: string): string {
    return path.join(this.dir, id);
  }

  read(id: string): Promise<Buffer> {
    return readFile(this.path(id));
  }

  /** Forgets a file and removes its bytes; false when there was no such file. */
  async delete(id: string): Promise<boolean> {
    if (this.stmt.delete.run(id).changes === 0) return false;
    await rm(this.path(id), { force: true });
    return true;
  }
}
