// The OpenAI files API, for batches: `POST /v1/files` (multipart upload, purpose "batch"), `GET /v1/files`,
// `GET /v1/files/{id}`, `GET /v1/files/{id}/content` (the raw bytes), `DELETE /v1/files/{id}`.
// An upload is checked as a batch input file (batch-input.ts) before it is stored, so a bad line is a
// 400 naming it. Batch output files (purpose "batch_output") are written by the batch finalizer.
// A file is visible to the user who owns it and to admins (others get 404), as batches are. Metadata is
// in SQLite (file-store.ts) or, with redisUrl, in Redis with the bytes on sharedDataDir (redis-file-store.ts).
import { createReadStream } from "node:fs";
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { MAX_INPUT_BYTES, parseBatchInput } from "../../dialects/openai/batch-input.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { FileBackend, StoredFile } from "../../files/file-store.js";
import { boundaryOf, parseMultipart } from "../../http/multipart.js";
import { resourceIdParams } from "../../http/params.js";

/** Room for the multipart framing and the other fields around the largest file. */
const UPLOAD_LIMIT = MAX_INPUT_BYTES + 1024 * 1024;

const uploadBody = z.object({
  purpose: z.literal("batch", { error: "purpose must be 'batch' (the only purpose this server stores files for)" }),
  file: z.object(
    { filename: z.string().max(1024), contentType: z.string().optional(), data: z.instanceof(Buffer) },
    { error: "file must be a file part (with a filename)" },
  ),
});

const listQuery = z.object({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  after: z.string().max(64).optional(),
});

const unix = (ms: number) => Math.floor(ms / 1000);

/** A file as OpenAI's file object. */
export const fileObject = (f: StoredFile) => ({
  id: f.id,
  object: "file" as const,
  bytes: f.bytes,
  created_at: unix(f.createdMs),
  filename: f.filename,
  purpose: f.purpose,
  status: "processed" as const,
});

/** The owner recorded for what a request creates. */
export const ownerOf = (request: FastifyRequest) => request.principal?.user ?? "anonymous";

/** The file if this request may see it (owner or admin), else 404, as for missing files. */
export async function visibleFile(files: FileBackend, request: FastifyRequest, id: string): Promise<StoredFile> {
  const file = await files.get(id);
  const p = request.principal;
  if (!file || (p?.role !== "admin" && ownerOf(request) !== file.owner)) throw new InfernoError("NOT_FOUND", `file '${id}' not found`, undefined, { param: "file_id" });
  return file;
}

export const openaiFileRoutes: FastifyPluginAsyncZod<{ files: FileBackend }> = async (app, { files }) => {
  const removed = await files.sweep();
  if (removed > 0) app.log.info({ removed }, "removed partial or orphaned files left by an earlier run");

  // Only this plugin's routes read multipart bodies; everything else keeps reading JSON.
  app.addContentTypeParser("multipart/form-data", { parseAs: "buffer", bodyLimit: UPLOAD_LIMIT }, (request, body, done) => {
    try {
      done(null, parseMultipart(body as Buffer, boundaryOf(request.headers["content-type"])));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.post("/files", { schema: { body: uploadBody }, bodyLimit: UPLOAD_LIMIT, config: { dialect: "openai" } }, async (request) => {
    const { file, purpose } = request.body;
    parseBatchInput(file.data);
    const stored = await files.add({ filename: file.filename || "batch.jsonl", purpose, owner: ownerOf(request), data: file.data });
    return fileObject(stored);
  });

  app.get("/files", { schema: { querystring: listQuery }, config: { dialect: "openai" } }, async (request) => {
    const { purpose, order, after } = request.query;
    const limit = request.query.limit ?? 10_000;
    const owner = request.principal?.role === "admin" ? undefined : ownerOf(request);
    const page = await files.list({ owner, purpose, after, limit: limit + 1, order: order ?? "desc" });
    const data = page.slice(0, limit).map(fileObject);
    return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.length > limit };
  });

  app.get("/files/:id", { schema: { params: resourceIdParams }, config: { dialect: "openai" } }, async (request) =>
    fileObject(await visibleFile(files, request, request.params.id)),
  );

  app.get("/files/:id/content", { schema: { params: resourceIdParams }, config: { dialect: "openai" } }, async (request, reply) => {
    const file = await visibleFile(files, request, request.params.id);
    return reply.type("application/octet-stream").header("content-length", file.bytes).send(createReadStream(files.path(file.id)));
  });

  app.delete("/files/:id", { schema: { params: resourceIdParams }, config: { dialect: "openai" } }, async (request) => {
    const file = await visibleFile(files, request, request.params.id);
    await files.delete(file.id);
    return { id: file.id, object: "file" as const, deleted: true };
  });
};
