// The multipart/form-data parser behind `POST /v1/files`, and the batch input file checks. Needs no model.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_INPUT_LINES, parseBatchInput } from "../../src/dialects/openai/batch-input.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { boundaryOf, parseMultipart, type MultipartFile } from "../../src/http/multipart.js";

const B = "----xYz0";
const part = (headers: string[], body: string) => `--${B}\r\n${headers.join("\r\n")}\r\n\r\n${body}\r\n`;
const form = (...parts: string[]) => Buffer.from(`${parts.join("")}--${B}--\r\n`);
const field = (name: string, value: string) => part([`Content-Disposition: form-data; name="${name}"`], value);
const file = (name: string, filename: string, data: string) =>
  part([`Content-Disposition: form-data; name="${name}"; filename="${filename}"`, "Content-Type: application/jsonl"], data);

const refuses = (fn: () => unknown, fragment: string) =>
  assert.throws(fn, (err: unknown) => err instanceof InfernoError && err.code === "INVALID_REQUEST" && err.message.includes(fragment));

describe("parseMultipart", () => {
  it("splits fields and a file, keeping the file's bytes exactly (CRLFs and dashes included)", () => {
    const data = `{"a":1}\r\n--${B.slice(0, 4)}\n\u00e9\r\n`;
    const out = parseMultipart(form(field("purpose", "batch"), file("file", "in.jsonl", data)), B);
    assert.equal(out.purpose, "batch");
    const f = out.file as MultipartFile;
    assert.equal(f.filename, "in.jsonl");
    assert.equal(f.contentType, "application/jsonl");
    assert.equal(f.data.toString(), data);
  });

  it("ignores a preamble, reads quoted and RFC 5987 filenames, and empty files", () => {
    const body = Buffer.concat([Buffer.from("preamble\r\n"), form(
      part(['Content-Disposition: form-data; name="a"; filename="we \\"x\\".jsonl"'], ""),
      part(["Content-Disposition: form-data; name=b; filename=plain.txt; filename*=UTF-8''caf%C3%A9.jsonl"], "x"),
    )]);
    const out = parseMultipart(body, B, { maxFiles: 2 });
    assert.equal((out.a as MultipartFile).filename, 'we "x".jsonl');
    assert.equal((out.a as MultipartFile).data.length, 0);
    assert.equal((out.b as MultipartFile).filename, "café.jsonl");
  });

  it("refuses malformed bodies and bodies over its limits", () => {
    refuses(() => parseMultipart(Buffer.from("nothing here"), B), "boundary");
    refuses(() => parseMultipart(Buffer.from(field("a", "x")), B), "closing boundary");
    refuses(() => parseMultipart(form(field("a", "x"), field("a", "y")), B), "appears twice");
    refuses(() => parseMultipart(form(part(["Content-Type: text/plain"], "x")), B), "Content-Disposition");
    refuses(() => parseMultipart(form(file("a", "1", "x"), file("b", "2", "y")), B), "file");
    refuses(() => parseMultipart(form(...Array.from({ length: 40 }, (_, i) => field(`f${i}`, "x"))), B), "parts");
    refuses(() => parseMultipart(form(field("a", "x".repeat(100))), B, { maxFieldBytes: 10 }), "over 10 bytes");
  });

  it("takes the boundary from the content type", () => {
    assert.equal(boundaryOf(`multipart/form-data; boundary=${B}`), B);
    assert.equal(boundaryOf('multipart/form-data; charset=utf-8; boundary="a b"'), "a b");
    refuses(() => boundaryOf("application/json"), "multipart/form-data");
    refuses(() => boundaryOf("multipart/form-data"), "boundary");
  });
});

describe("parseBatchInput", () => {
  const line = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/embeddings", body: { model: "m", input: "x" } });

  it("skips blank lines and numbers lines as in the file", () => {
    const lines = parseBatchInput(Buffer.from(`${line("a")}\r\n\n${line("b")}\n`));
    assert.deepEqual(lines.map((l) => [l.line, l.custom_id]), [[1, "a"], [3, "b"]]);
  });

  it("names at most twenty bad lines, and refuses non-UTF-8 and too many lines", () => {
    const bad = Array.from({ length: 30 }, () => "{").join("\n");
    refuses(() => parseBatchInput(Buffer.from(bad)), "line 20: not valid JSON (and 10 more)");
    refuses(() => parseBatchInput(Buffer.from([0xff, 0xfe])), "UTF-8");
    const many = Array.from({ length: MAX_INPUT_LINES + 1 }, (_, i) => line(`r${i}`)).join("\n");
    refuses(() => parseBatchInput(Buffer.from(many)), `at most ${MAX_INPUT_LINES} requests`);
  });
});
