import type Database from "better-sqlite3";
import { InfernoError } from "../errors/catalogue.js";
import { migrate } from "../store/database.js";

/** A model registered by path through `POST /models`; kept in the data dir's database across restarts. */
export interface Registration {
  id: string;
  name: string;
  path: string;
  options: Record<string, unknown>;
  created: number;
}

const MIGRATIONS = [
  `CREATE TABLE registrations (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     path TEXT NOT NULL,
     options TEXT NOT NULL,
     created INTEGER NOT NULL
   ) STRICT`,
];

interface Row {
  id: string;
  name: string;
  path: string;
  options: string;
  created: number;
}

const parseOptions = (text: string): Record<string, unknown> => {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/** Registrations as rows of the data dir's SQLite database (component "registrations"). */
export class RegistrationStore {
  private readonly insert: Database.Statement<[string, string, string, string, number]>;
  private readonly insertIfAbsent: Database.Statement<[string, string, string, string, number]>;
  private readonly remove: Database.Statement<[string]>;
  private readonly all: Database.Statement<[], Row>;

  constructor(private readonly db: Database.Database) {
    migrate(db, "registrations", MIGRATIONS);
    this.insert = db.prepare("INSERT INTO registrations (id, name, path, options, created) VALUES (?, ?, ?, ?, ?)");
    this.insertIfAbsent = db.prepare("INSERT OR IGNORE INTO registrations (id, name, path, options, created) VALUES (?, ?, ?, ?, ?)");
    this.remove = db.prepare("DELETE FROM registrations WHERE id = ?");
    this.all = db.prepare("SELECT id, name, path, options, created FROM registrations ORDER BY id");
  }

  list(): Registration[] {
    return this.all.all().map((r) => ({ ...r, options: parseOptions(r.options) }));
  }

  add(r: Registration): void {
    try {
      this.insert.run(r.id, r.name, r.path, JSON.stringify(r.options), r.created);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw new InfernoError("MODEL_EXISTS", `a model named '${r.id}' already exists`, { model: r.id });
      }
      throw err;
    }
  }

  /** Adds every registration whose id is not taken yet, in one transaction; returns how many were added. */
  addMissing(registrations: readonly Registration[]): number {
    const run = this.db.transaction(() => {
      let added = 0;
      for (const r of registrations) added += this.insertIfAbsent.run(r.id, r.name, r.path, JSON.stringify(r.options), r.created).changes;
      return added;
    });
    return run.immediate();
  }

  delete(id: string): void {
    this.remove.run(id);
  }
}
