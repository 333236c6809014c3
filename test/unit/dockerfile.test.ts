// The Dockerfile cannot be built on the project's machines (no Docker engine), so what it must hold is
// checked here: the runtime stage copies every folder the server reads at run time, runs as a user of its
// own, on the Node LTS line, and the package's engines and @types/node agree with the Node the tests run on.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/paths.js";

const dockerfile = readFileSync(path.join(repoRoot, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));

test("the image copies every folder read at run time", () => {
  // proto: the gRPC service definition; console: the web console; demo/models: the first-run models.
  for (const folder of ["proto", "console", "demo"]) {
    assert.ok(existsSync(path.join(repoRoot, folder)), `${folder}/ is in the repository`);
    assert.match(runtimeStage, new RegExp(`^COPY ${folder} \\./${folder}$`, "m"), `the runtime stage copies ${folder}/`);
  }
  assert.match(runtimeStage, /^COPY --from=build \/app\/dist \.\/dist$/m);
  assert.match(runtimeStage, /^COPY --from=build \/app\/node_modules \.\/node_modules$/m);
  // The demo models stay out of the models volume: they are served from /app/demo only while /models is empty.
  assert.doesNotMatch(dockerfile, /COPY .*demo.* \/models/);
});

test("the image runs as a user of its own on Node 22 LTS", () => {
  assert.match(dockerfile, /^ARG NODE_BASE=node:22-bookworm-slim$/m);
  const users = [...runtimeStage.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
  assert.equal(users.length, 1);
  assert.notEqual(users[0], "root");
  assert.notEqual(users[0], "0");
  assert.ok(runtimeStage.indexOf("USER ") < runtimeStage.indexOf("ENTRYPOINT"));
});

test("engines and @types/node agree with the Node the tests run on", () => {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
    engines: { node: string };
    devDependencies: Record<string, string>;
  };
  const lowest = Number(/^>=(\d+)$/.exec(pkg.engines.node)?.[1]);
  const running = Number(process.versions.node.split(".")[0]);
  assert.ok(running >= lowest, `Node ${process.versions.node} satisfies engines ${pkg.engines.node}`);
  // Types of the oldest supported Node, so code that compiles runs on every Node the engines allow.
  assert.equal(Number(/^\^(\d+)\./.exec(pkg.devDependencies["@types/node"]!)?.[1]), lowest);
});
