// The npm registry reachable from this project's machines serves only node-llama-cpp's Linux binaries,
// so `npm install` here leaves node-llama-cpp's macOS, Windows and riscv64 optional packages out of
// package-lock.json, and `npm ci` then refuses the lock ("Missing: ... from lock file"). This adds
// lock entries for them (same version, their os/cpu), which npm skips on Linux x64 and fetches
// elsewhere. Run after any `npm install` that rewrites the lock: node .ci/lock-add-foreign-optionals.mjs
import { readFileSync, writeFileSync } from "node:fs";

const lockPath = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const host = lock.packages["node_modules/node-llama-cpp"];
if (!host) throw new Error("node-llama-cpp is not in the lock file");
const platforms = {
  "linux-riscv64": { os: ["linux"], cpu: ["riscv64"] },
  "mac-arm64-metal": { os: ["darwin"], cpu: ["arm64"] },
  "mac-x64": { os: ["darwin"], cpu: ["x64"] },
  "win-arm64": { os: ["win32"], cpu: ["arm64"] },
  "win-x64": { os: ["win32"], cpu: ["x64"] },
  "win-x64-cuda": { os: ["win32"], cpu: ["x64"] },
  "win-x64-cuda-ext": { os: ["win32"], cpu: ["x64"] },
  "win-x64-vulkan": { os: ["win32"], cpu: ["x64"] },
};
let added = 0;
for (const [name, { os, cpu }] of Object.entries(platforms)) {
  const key = `node_modules/@node-llama-cpp/${name}`;
  if (!host.optionalDependencies?.[`@node-llama-cpp/${name}`] || lock.packages[key]) continue;
  lock.packages[key] = { version: host.version, cpu, license: "MIT", optional: true, os, engines: { node: ">=20.0.0" } };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n");
console.log(`added ${added} lock entries`);
