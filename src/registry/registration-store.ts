import { promises as fs } from "node:fs";
import path from "node:path";

/** A model registered by path through `POST /models`; kept in the data dir across restarts. */
export interface Registration {
  id: string;
  name: string;
  path: string;
  options: Record<string, unknown>;
  created: number;
}

/**
 * Registrations as one JSON file, rewritten whole through a temp file, fsync and rename,
 * so a crash mid-write leaves the old file or the new one, never half of one.
 */
export class RegistrationStore {
  private readonly file: string;
  private writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    this.file = path.join(dataDir, "registrations.json");
  }

  async load(): Promise<Registration[]> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const parsed = JSON.parse(text) as { registrations?: Registration[] };
    return Array.isArray(parsed.registrations) ? parsed.registrations : [];
  }

  /** Serialised: concurrent saves land in call order. */
  save(registrations: Registration[]): Promise<void> {
    const body = JSON.stringify({ version: 1, registrations }, null, 2);
    this.writing = this.writing.catch(() => undefined).then(() => this.writeAtomic(body));
    return this.writing;
  }

  private async writeAtomic(body: string): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const handle = await fs.open(tmp, "w");
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, this.file);
  }
}
