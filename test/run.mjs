// Runs every compiled test file with node's test runner (Node 20 has no glob support for --test).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";

const root = path.resolve(new URL(".", import.meta.url).pathname, "../dist/test");
const only = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.js") && (only.length === 0 || only.some((o) => p.includes(o)))) files.push(p);
  }
};
walk(root);
if (files.length === 0) {
  console.error("no test files found under dist/test (run tsc first)");
  process.exit(1);
}
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=120000", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
