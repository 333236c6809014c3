import { closeSync, mkdirSync, openSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";

/** The one SQLite database of a data dir, shared by the server and the CLI (WAL lets both use it at once). */
export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, "inferno.db");
  // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode,
  // and the file holds password and key hashes. An existing file keeps whatever mode it has.
  closeSync(openSync(file, "a", 0o600));
  const db = new Database(file, { timeout: 5000 });
  try {
    db.pragma("busy_timeout = 5000");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Brings one component's tables up to date: `migrations[i]` takes the component from version i to i + 1.
 * Append to the list, never edit an applied entry. Each step runs in its own IMMEDIATE transaction that
 * re-reads the version first, so a server and a CLI starting together apply every step once.
 * Returns the component's version afterwards.
 */
export function migrate(db: Database.Database, component: string, migrations: readonly string[]): number {
  db.exec("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT");
  const read = db.prepare<[string], { version: number }>("SELECT version FROM schema_version WHERE component = ?");
  const write = db.prepare<[string, number]>(
    "INSERT INTO schema_version (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version",
  );
  const current = () => read.get(component)?.version ?? 0;
  const step = db.transaction((): boolean => {
    const version = current();
    const sql = migrations[version];
    if (sql === undefined) return false;
    db.exec(sql);
    write.run(component, version + 1);
    return true;
  });
  while (step.immediate());
  const version = current();
  if (version > migrations.length) {
    throw new Error(`database schema of '${component}' is at version ${version}, newer than this Inferno knows (${migrations.length}); upgrade Inferno`);
  }
  return version;
}
