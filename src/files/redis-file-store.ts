// Files of the OpenAI files API shared by replicas (config redisUrl): bytes in
// `<sharedDataDir>/files/<id>` (a volume every replica mounts), metadata in Redis:
//   file:<id>   hash: filename, bytes, purpose, created_ms, owner
//   files       sorted set of file ids by creation time
// As in file-store.ts, bytes are complete (written, synced, renamed) before the metadata exists, so
// metadata always points to complete bytes; deleting removes the metadata, then the bytes. The sweep
// only removes `.part` files older than an hour: another replica may be writing the newer ones, and
// bytes with no metadata may be another replica's finished write about to be recorded.
import { mkdirSync } from "node:fs";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Redis } from "ioredis";
import { createFileWriter, type FileBackend, type FileQuery, type FileWriter, type StoredFile } from "./file-store.js";

const STALE_PART_MS = 3600_000;

export class RedisFileStore implements FileBackend {
  constructor(private readonly r: Redis, private readonly prefix: string, private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private key(...parts: string[]): string {
    return `${this.prefix}${parts.join(":")}`;
  }

  async sweep(): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(".part")) continue;
      const p = path.join(this.dir, name);
      const s = await stat(p).catch(() => undefined);
      if (s && Date.now() - s.mtimeMs > STALE_PART_MS) {
        await rm(p, { force: true });
        removed++;
      }
    }
    return removed;
  }

  create(): Promise<FileWriter> {
    return createFileWriter(this.dir);
  }

  /** Records a written file's metadata. */
  async insert(file: Omit<StoredFile, "createdMs">, now = Date.now()): Promise<StoredFile> {
    await this.r.multi()
      .hset(this.key("file", file.id), { filename: file.filename, bytes: file.bytes, purpose: file.purpose, created_ms: now, owner: file.owner })
      .zadd(this.key("files"), now, file.id)
      .exec();
    return { ...file, createdMs: now };
  }

  async add(input: { filename: string; purpose: string; owner: string; data: Buffer }): Promise<StoredFile> {
    const writer = await this.create();
    try {
      await writer.write(input.data);
      const bytes = await writer.finish();
      return await this.insert({ id: writer.id, filename: input.filename, bytes, purpose: input.purpose, owner: input.owner });
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  async get(id: string): Promise<StoredFile | undefined> {
    const h = await this.r.hgetall(this.key("file", id));
    if (!h.filename) return undefined;
    return { id, filename: h.filename, bytes: Number(h.bytes), purpose: h.purpose!, createdMs: Number(h.created_ms), owner: h.owner! };
  }

  async list(q: FileQuery): Promise<StoredFile[]> {
    const ids = q.order === "asc" ? await this.r.zrange(this.key("files"), 0, -1) : await this.r.zrevrange(this.key("files"), 0, -1);
    const start = q.after === undefined ? 0 : ids.indexOf(q.after) + 1;
    const out: StoredFile[] = [];
    for (const id of ids.slice(start)) {
      const f = await this.get(id);
      if (!f || (q.owner !== undefined && f.owner !== q.owner) || (q.purpose !== undefined && f.purpose !== q.purpose)) continue;
      out.push(f);
      if (out.length >= q.limit) break;
    }
    return out;
  }

  path(id: string): string {
    return path.join(this.dir, id);
  }

  read(id: string): Promise<Buffer> {
    return readFile(this.path(id));
  }

  async delete(id: string): Promise<boolean> {
    const [[, n] = []] = (await this.r.multi().del(this.key("file", id)).zrem(this.key("files"), id).exec()) ?? [];
    if (n !== 1) return false;
    await rm(this.path(id), { force: true });
    return true;
  }
}
