// Registrations of Inferno versions before the database: DATA_DIR/registrations.json, moved into the
// database once, then renamed so that nothing reads it again and nothing is lost.
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Logger } from "../core/logger.js";
import { isValidModelId, modelTypeOf } from "./model-paths.js";
import type { Registration, RegistrationStore } from "./registration-store.js";

export const LEGACY_FILE = "registrations.json";
export const MIGRATED_SUFFIX = ".migrated";

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** One entry of the old file as a registration, or undefined when it is not one. */
function toRegistration(v: unknown, now: number): Registration | undefined {
  if (!isObject(v) || typeof v.id !== "string" || !isValidModelId(v.id)) return undefined;
  if (typeof v.path !== "string" || v.path.length === 0 || !modelTypeOf(v.path)) return undefined;
  return {
    id: v.id,
    name: typeof v.name === "string" && v.name.length > 0 ? v.name : v.id,
    path: v.path,
    options: isObject(v.options) ? v.options : {},
    created: typeof v.created === "number" && Number.isFinite(v.created) ? Math.floor(v.created) : now,
  };
}

/** A name beside `file` that does not exist yet (a second migration never overwrites the first one's copy). */
async function freeName(base: string): Promise<string> {
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? base : `${base}.${i}`;
    try {
      await fs.access(candidate);
    } catch {
      return candidate;
    }
  }
}

/**
 * Imports `registrations.json` into the store in one transaction, then renames it to
 * `registrations.json.migrated`. The rename comes after the commit: a process that dies in between
 * imports again at its next start, where the ids already in the database are skipped, so nothing is
 * doubled. A file that cannot be read or is not the JSON an older Inferno wrote is logged as an error
 * and left where it is, unmigrated; start-up goes on.
 */
export async function importLegacyRegistrations(store: RegistrationStore, dataDir: string, log: Logger): Promise<void> {
  const file = path.join(dataDir, LEGACY_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    log.error({ file, err: (err as Error).message }, "cannot read registrations.json; its registrations are not imported (the file is left as it is)");
    return;
  }
  let entries: unknown;
  try {
    const parsed: unknown = JSON.parse(text);
    entries = isObject(parsed) ? parsed.registrations : undefined;
  } catch (err) {
    log.error({ file, err: (err as Error).message }, "registrations.json is not valid JSON; its registrations are not imported (fix the file and restart)");
    return;
  }
  if (!Array.isArray(entries)) {
    log.error({ file }, 'registrations.json has no "registrations" list; nothing is imported (fix the file and restart)');
    return;
  }
  const now = Math.floor(Date.now() / 1000);
  const valid: Registration[] = [];
  entries.forEach((entry, index) => {
    const r = toRegistration(entry, now);
    if (r) valid.push(r);
    else log.warn({ file, index }, "skipping an entry of registrations.json that is not a valid registration (it stays in the renamed file)");
  });
  const added = store.addMissing(valid);
  const target = await freeName(file + MIGRATED_SUFFIX);
  try {
    await fs.rename(file, target);
  } catch (err) {
    // ENOENT: another process (a CLI started at the same time) imported and renamed it first. Otherwise
    // the next start imports it again, skipping what is already in the database.
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      log.error({ file, err: (err as Error).message }, "registrations.json was imported but could not be renamed");
    }
  }
  log.info({ imported: added, skipped: entries.length - valid.length, kept_as: target }, "registrations moved from registrations.json into the database");
}
