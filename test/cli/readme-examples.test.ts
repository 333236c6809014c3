// The README's shell examples stay true: every fenced block that calls the HTTP API carries a marker,
// `<!-- readme-test: run -->` or `<!-- readme-test: skip REASON -->`, on the line before it, and every
// `run` block is executed with bash against a real `inferno serve` started as the Quickstart starts it
// (an empty models dir: the two demo models). curl fails on any HTTP error status (--fail-with-body), so
// an example that answers 4xx/5xx fails the test.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { serveCli } from "../helpers/cli.js";
import { repoRoot, tempDir } from "../helpers/paths.js";

interface Block {
  line: number;
  marker: string | undefined;
  code: string;
}

/** Fenced sh/bash blocks with the marker comment (if any) on the line before the fence. */
function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const end = lines.indexOf("```", i + 1);
    assert.ok(end > i, `unclosed fence at README line ${i + 1}`);
    if (fence[1] === "sh" || fence[1] === "bash") {
      const marker = /^<!-- readme-test: (.+?) -->$/.exec(lines[i - 1] ?? "")?.[1];
      blocks.push({ line: i + 1, marker, code: lines.slice(i + 1, end).join("\n") });
    }
    i = end;
  }
  return blocks;
}

const callsTheApi = (code: string) => /(^|[\s|;(])curl\s/m.test(code) && /(localhost|127\.0\.0\.1):808\d/.test(code);

test("the README's curl examples run against a live server", async (t) => {
  const readme = await readFile(path.join(repoRoot, "README.md"), "utf8");
  const blocks = shellBlocks(readme).filter((b) => callsTheApi(b.code));
  const unmarked = blocks.filter((b) => b.marker === undefined || !/^(run|skip \S.*)$/.test(b.marker));
  assert.deepEqual(unmarked.map((b) => b.line), [], "README blocks that call the API need <!-- readme-test: run --> or <!-- readme-test: skip REASON -->");
  const runnable = blocks.filter((b) => b.marker === "run");
  assert.ok(runnable.length >= 5, `only ${runnable.length} runnable README examples`);

  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await mkdir(path.join(dir, "models"));
  const served = await serveCli(["--models-dir", path.join(dir, "models"), "--data-dir", path.join(dir, "data")]);
  t.after(async () => {
    served.child.kill("SIGTERM");
    await served.exit;
  });
  const address = new URL(served.url).host;
  for (const block of runnable) {
    const script = [
      "set -euo pipefail",
      // The examples leave out -f for readability; here an HTTP error status fails the example.
      "curl() { command curl --fail-with-body --show-error \"$@\"; }",
      block.code.replaceAll("localhost:8080", address).replaceAll("127.0.0.1:8080", address),
    ].join("\n");
    const run = spawnSync("bash", ["-c", script], { cwd: dir, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, `README example at line ${block.line} failed (${run.status}):\n${block.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`);
    assert.ok(run.stdout.trim().length > 0, `README example at line ${block.line} printed nothing`);
  }
});
