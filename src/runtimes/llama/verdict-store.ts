import { promises as fs } from "node:fs";
import path from "node:path";

/** What probing a model file found: llama.cpp opens it, or not and why. */
export type Verdict = { ok: true } | { ok: false; message: string };

const MAX_ENTRIES = 10_000;

/**
 * Verdicts by file identity, in memory and (with a file) across restarts: one JSON object written
 * whole through a temp file and rename. A missing or unreadable file is an empty store: the worst case
 * is probing a file again.
 */
export class VerdictStore {
  private entries: Map<string, Verdict & { at: number }> | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file: string | undefined) {}

  async get(key: string): Promise<Verdict | undefined> {
    const entry = (await this.all()).get(key);
    return entry && (entry.ok ? { ok: true } : { ok: false, message: entry.message });
  }

  async set(key: string, verdict: Verdict): Promise<void> {
    const entries = await this.all();
    if (entries.has(key)) return;
    entries.set(key, { ...verdict, at: Date.now() });
    // Oldest first in a Map: a file that changes often cannot grow the store without bound.
    for (const old of entries.keys()) {
      if (entries.size <= MAX_ENTRIES) break;
      entries.delete(old);
    }
    if (!this.file) return;
    const body = JSON.stringify({ version: 1, verdicts: Object.fromEntries(entries) });
    this.writing = this.writing.catch(() => undefined).then(() => this.write(body));
    await this.writing.catch(() => undefined);
  }

  private async all(): Promise<Map<string, Verdict & { at: number }>> {
    if (this.entries) return this.entries;
    const entries = new Map<string, Verdict & { at: number }>();
    if (this.file) {
      try {
        const parsed = JSON.parse(await fs.readFile(this.file, "utf8")) as { verdicts?: Record<string, Verdict & { at: number }> };
        for (const [key, v] of Object.entries(parsed.verdicts ?? {})) {
          if (v && typeof v === "object" && (v.ok === true || (v.ok === false && typeof v.message === "string"))) entries.set(key, v);
        }
      } catch {
        // absent or damaged: start empty
      }
    }
    this.entries ??= entries;
    return this.entries;
  }

  private async write(body: string): Promise<void> {
    const file = this.file!;
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, body);
    await fs.rename(tmp, file);
  }
}
