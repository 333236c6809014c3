// `GET /audit` (admin): the audit log of this replica (src/audit), filtered and paged by id, as JSON or
// as JSON lines (`Accept: application/x-ndjson` or `?format=jsonl`) for export.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { InfernoError } from "../../errors/catalogue.js";

/** An instant: unix seconds, or an ISO 8601 date or date-time. */
const instant = z
  .string()
  .max(40)
  .regex(/^(\d{1,11}|\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?)$/, "expected unix seconds or an ISO 8601 date-time");

const auditQuery = z
  .object({
    /** Comma-separated event types (`key.create`) or families (`auth` for every auth.* type). */
    type: z.string().max(512).regex(/^[a-z]+(\.[a-z]+)?(,[a-z]+(\.[a-z]+)?)*$/, "expected types such as key.create or families such as auth, comma-separated").optional(),
    /** The actor: a user name, "anonymous", "cli" or "system". */
    actor: z.string().min(1).max(128).optional(),
    since: instant.optional(),
    until: instant.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    /** The cursor: only events with a larger id (the previous page's `next_after`). */
    after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    format: z.enum(["json", "jsonl"]).optional(),
  })
  .strict();

function toMs(value: string | undefined, param: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  if (!Number.isFinite(ms)) throw new InfernoError("INVALID_REQUEST", `${param} is not a valid instant: '${value}'`, undefined, { param });
  return ms;
}

export const auditRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get("/audit", { schema: { querystring: auditQuery }, config: { role: "admin" } }, async (request, reply) => {
    const q = request.query;
    const sinceMs = toMs(q.since, "since");
    const untilMs = toMs(q.until, "until");
    // One more than asked, to know whether another page follows.
    const found = app.audit.query({
      ...(q.type ? { types: q.type.split(",") } : {}),
      ...(q.actor !== undefined ? { actor: q.actor } : {}),
      ...(sinceMs !== undefined ? { sinceMs } : {}),
      ...(untilMs !== undefined ? { untilMs } : {}),
      ...(q.after !== undefined ? { after: q.after } : {}),
      limit: q.limit + 1,
    });
    const hasMore = found.length > q.limit;
    const events = hasMore ? found.slice(0, q.limit) : found;
    const nextAfter = events.at(-1)?.id ?? q.after ?? null;
    if (hasMore) reply.header("x-next-after", String(nextAfter));
    const jsonl = q.format === "jsonl" || (q.format === undefined && /\bapplication\/x-ndjson\b/i.test(request.headers.accept ?? ""));
    if (jsonl) return reply.type("application/x-ndjson").send(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
    return { events, next_after: nextAfter, has_more: hasMore };
  });
};
