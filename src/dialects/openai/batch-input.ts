// Batch input files: JSONL, one request per line, `{custom_id, method: "POST", url, body}`.
// Checked twice, each time naming every bad line (up to MAX_REPORTED): at upload, the lines' shape
// (JSON, fields, a batchable url, unique custom_ids, size caps); at batch creation, each body against
// its endpoint's schema and the checks the live route makes before queueing, and each model.
import { z } from "zod";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { GenerationLimits } from "../native.js";
import { BATCH_ENDPOINTS, batchBodySchemas, checkBatchBody, type BatchEndpoint } from "./batch-requests.js";

/** Largest input file, and most requests in one. */
export const MAX_INPUT_BYTES = 100 * 1024 * 1024;
export const MAX_INPUT_LINES = 50_000;
const MAX_REPORTED = 20;

const lineSchema = z.object({
  custom_id: z.string().min(1).max(512),
  method: z.literal("POST"),
  url: z.enum(BATCH_ENDPOINTS),
  body: z.record(z.string(), z.unknown()),
});

/** One request of an input file; `line` counts from 1. */
export interface BatchLine {
  line: number;
  custom_id: string;
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

/** One batch item, ready for the batch store. */
export interface BatchItemInput {
  id: string;
  endpoint: BatchEndpoint;
  model: string;
  body: Record<string, unknown>;
}

/** Collects per-line problems and throws them as one 400. */
class LineErrors {
  private readonly errors: Array<{ line: number; message: string }> = [];

  add(line: number, message: string): void {
    this.errors.push({ line, message });
  }

  throwIfAny(what: string, param: string): void {
    if (this.errors.length === 0) return;
    const shown = this.errors.slice(0, MAX_REPORTED).map((e) => `line ${e.line}: ${e.message}`);
    const more = this.errors.length > MAX_REPORTED ? ` (and ${this.errors.length - MAX_REPORTED} more)` : "";
    throw new InfernoError("INVALID_REQUEST", `${what}: ${shown.join("; ")}${more}`, { errors: this.errors.slice(0, MAX_REPORTED) }, { param });
  }
}

const issueText = (issue: z.core.$ZodIssue, prefix: string) => `${[prefix, ...issue.path.map(String)].filter(Boolean).join(".") || "(line)"}: ${issue.message}`;

/** Parses and checks the shape of an input file's lines (blank lines are skipped); throws a 400 naming the bad ones. */
export function parseBatchInput(data: Buffer): BatchLine[] {
  if (data.length > MAX_INPUT_BYTES) throw new InfernoError("PAYLOAD_TOO_LARGE", `a batch input file holds at most ${MAX_INPUT_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new InfernoError("INVALID_REQUEST", "a batch input file must be UTF-8 JSONL", undefined, { param: "file" });
  }
  const errors = new LineErrors();
  const out: BatchLine[] = [];
  const seen = new Map<string, number>();
  const rows = text.split("\n");
  for (const [i, row] of rows.entries()) {
    if (row.trim() === "") continue;
    const line = i + 1;
    if (out.length >= MAX_INPUT_LINES) {
      throw new InfernoError("INVALID_REQUEST", `a batch input file holds at most ${MAX_INPUT_LINES} requests (line ${line} is one more)`, undefined, {
        param: "file",
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(row);
    } catch {
      errors.add(line, "not valid JSON");
      continue;
    }
    const parsed = lineSchema.safeParse(json);
    if (!parsed.success) {
      errors.add(line, parsed.error.issues.map((issue) => issueText(issue, "")).join(", "));
      continue;
    }
    const first = seen.get(parsed.data.custom_id);
    if (first !== undefined) errors.add(line, `custom_id '${parsed.data.custom_id}' is also on line ${first}`);
    seen.set(parsed.data.custom_id, first ?? line);
    out.push({ line, ...parsed.data });
  }
  errors.throwIfAny("invalid batch input file", "file");
  if (out.length === 0) throw new InfernoError("INVALID_REQUEST", "the batch input file holds no requests", undefined, { param: "file" });
  return out;
}

/** Checks every line's body for `endpoint` and returns the batch's items; throws a 400 naming the bad lines. */
export function batchItemsOf(lines: BatchLine[], endpoint: BatchEndpoint, limits: GenerationLimits): Array<BatchItemInput & { line: number }> {
  const errors = new LineErrors();
  const items: Array<BatchItemInput & { line: number }> = [];
  for (const { line, custom_id, url, body } of lines) {
    if (url !== endpoint) {
      errors.add(line, `url '${url}' is not the batch's endpoint '${endpoint}'`);
      continue;
    }
    const parsed = batchBodySchemas[endpoint].safeParse(body);
    if (!parsed.success) {
      errors.add(line, parsed.error.issues.map((issue) => issueText(issue, "body")).join(", "));
      continue;
    }
    try {
      checkBatchBody(endpoint, parsed.data, limits);
    } catch (err) {
      if (!(err instanceof InfernoError)) throw err;
      errors.add(line, err.param ? `body.${err.param}: ${err.message}` : err.message);
      continue;
    }
    items.push({ line, id: custom_id, endpoint, model: parsed.data.model, body: parsed.data });
  }
  errors.throwIfAny("invalid batch input", "input_file_id");
  return items;
}

/** Every model the items name must be a text model here; throws a 400 naming the lines of the others. */
export async function checkBatchModels(registry: ModelRegistry, items: ReadonlyArray<{ line: number; model: string }>): Promise<void> {
  const errors = new LineErrors();
  const verdicts = new Map<string, string | null>();
  for (const { line, model } of items) {
    if (!verdicts.has(model)) {
      const entry = await registry.get(model).catch((err: unknown) => {
        if (err instanceof InfernoError && err.code === "MODEL_NOT_FOUND") return undefined;
        throw err;
      });
      verdicts.set(model, !entry ? `model '${model}' not found` : entry.type !== "gguf" ? `model '${model}' is a ${entry.type} model and does not generate text` : null);
    }
    const problem = verdicts.get(model);
    if (problem) errors.add(line, problem);
  }
  errors.throwIfAny("invalid batch input", "input_file_id");
}
