import assert from "node:assert/strict";
import { test } from "node:test";
import { parseArgs } from "node:util";
import { configFlagHelp, configFlagOptions, configFromFlags, flagOf, type ConfigKey } from "../../src/config/config-flags.js";
import { configSchema, envNameOf, loadConfig } from "../../src/config/config.js";

const keys = Object.keys(configSchema.shape) as ConfigKey[];

test("every configuration key is a flag, listed in the help with its environment name", () => {
  const options = configFlagOptions();
  const help = configFlagHelp();
  for (const k of keys) {
    assert.ok(options[flagOf(k)], `--${flagOf(k)} is an option`);
    assert.match(help, new RegExp(`^  --${flagOf(k)}\\b.*${envNameOf(k)}$`, "m"), `${k} in the help`);
  }
  assert.equal(Object.keys(options).length, keys.length);
});

test("flags become configuration: values, switches, a boolean that defaults to on, repeatable roots", () => {
  const args = ["--queue-size", "3", "--probe-models", "false", "--model-root", "/a", "--model-root", "/b", "--auth", "--gguf-engine", "llama-server"];
  const { values } = parseArgs({ args, options: configFlagOptions(), strict: true });
  const config = loadConfig({ env: {}, flags: configFromFlags(values) });
  assert.equal(config.queueSize, 3);
  assert.equal(config.probeModels, false);
  assert.deepEqual(config.modelRoots, ["/a", "/b"]);
  assert.equal(config.auth, true);
  assert.equal(config.ggufEngine, "llama-server");
  assert.throws(() => loadConfig({ env: {}, flags: configFromFlags({ "queue-size": "many" }) }), /"queueSize" \(flag\)/);
});
