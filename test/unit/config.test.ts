// loadConfig: defaults, flag > env > file > default key by key, env string coercion, and a ConfigError
// naming the bad key and where it came from. Pure: env is always passed in, never read from process.env.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ConfigError, defaultBatchThreads, defaultThreads, envNameOf, loadConfig } from "../../src/config/config.js";
import { AUTO_STREAM_INTERVAL_MS, streamIntervalFor } from "../../src/runtimes/llama/native-generation.js";
import { pooledLlamaAddon } from "../../src/runtimes/llama/threadpool.js";
import { tempDir } from "../helpers/paths.js";

let dir: string;
let cleanup: () => Promise<void>;

before(async () => {
  ({ dir, cleanup } = await tempDir("inferno-config-"));
});
after(() => cleanup());

async function configFile(name: string, content: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** The ConfigError thrown by `fn`, failing the test if it throws anything else or nothing. */
function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ConfigError, nothing was thrown");
}

describe("defaults", () => {
  it("NLC_NO_THREADPOOL counts as the prebuilt addon", () => {
    assert.equal(pooledLlamaAddon({ NLC_NO_THREADPOOL: "1" }), false);
  });

  it("binds 127.0.0.1:8080, resolves ./models and ./data, threads from defaultThreads()", () => {
    const cfg = loadConfig({ env: {} });
    assert.equal(cfg.host, "127.0.0.1");
    assert.equal(cfg.port, 8080);
    assert.ok(path.isAbsolute(cfg.modelsDir));
    assert.equal(cfg.modelsDir, path.resolve("models"));
    assert.equal(cfg.dataDir, path.resolve("data"));
    assert.deepEqual(cfg.modelRoots, []);
    assert.equal(cfg.threads, defaultThreads());
    assert.equal(cfg.batchThreads, os.availableParallelism());
    assert.equal(cfg.gpu, "auto");
    assert.equal(cfg.logLevel, "info");
    assert.equal(cfg.logPretty, undefined);
  });

  it("defaultThreads: every core with the pooled addon, else one core left free; never below one", () => {
    const n = defaultThreads();
    assert.ok(Number.isInteger(n));
    assert.ok(n >= 1 && n <= os.availableParallelism(), `defaultThreads() = ${n}`);
    assert.equal(n, pooledLlamaAddon() ? os.availableParallelism() : Math.max(1, os.availableParallelism() - 1));
    assert.equal(defaultThreads(1, false), 1);
    assert.equal(defaultThreads(2, false), 1);
    assert.equal(defaultThreads(8, false), 7);
    assert.equal(defaultThreads(2, true), 2);
  });

  it("batch threads default to every core, and come from INFERNO_BATCH_THREADS or the flag", () => {
    assert.equal(defaultBatchThreads(2), 2);
    assert.equal(defaultBatchThreads(1), 1);
    assert.equal(loadConfig({ env: { INFERNO_BATCH_THREADS: "3" } }).batchThreads, 3);
    assert.equal(loadConfig({ env: { INFERNO_BATCH_THREADS: "3" }, flags: { batchThreads: "5" } }).batchThreads, 5);
    assert.throws(() => loadConfig({ env: { INFERNO_BATCH_THREADS: "0" } }), ConfigError);
  });

  it("thread tuning at load: on unless a thread count is set somewhere, and settable either way", async () => {
    assert.equal(loadConfig({ env: {} }).tuneThreads, true);
    assert.equal(loadConfig({ env: { INFERNO_THREADS: "2" } }).tuneThreads, false);
    assert.equal(loadConfig({ env: {}, flags: { batchThreads: "2" } }).tuneThreads, false);
    assert.equal(loadConfig({ file: await configFile("threads.json", { threads: 1 }), env: {} }).tuneThreads, false);
    assert.equal(loadConfig({ env: { INFERNO_THREADS: "2", INFERNO_TUNE_THREADS: "true" } }).tuneThreads, true);
    assert.equal(loadConfig({ env: { INFERNO_TUNE_THREADS: "off" } }).tuneThreads, false);
    assert.throws(() => loadConfig({ env: { INFERNO_TUNE_THREADS: "sometimes" } }), ConfigError);
  });

  it("stream interval: auto by default, a whole number of ms up to 1000, or auto, from env, flag or file", async () => {
    assert.equal(loadConfig({ env: {} }).streamIntervalMs, "auto");
    assert.equal(loadConfig({ env: { INFERNO_STREAM_INTERVAL_MS: "0" } }).streamIntervalMs, 0);
    assert.equal(loadConfig({ env: { INFERNO_STREAM_INTERVAL_MS: "0" }, flags: { streamIntervalMs: "auto" } }).streamIntervalMs, "auto");
    assert.equal(loadConfig({ file: await configFile("interval.json", { streamIntervalMs: 20 }), env: {} }).streamIntervalMs, 20);
    for (const bad of ["-1", "1001", "1.5", "sometimes"]) assert.throws(() => loadConfig({ env: { INFERNO_STREAM_INTERVAL_MS: bad } }), ConfigError, bad);
  });

  it("stream interval auto: grouped for a CPU model decoding on every core, else each token at once", () => {
    const cpu = { gpuLayers: 0, cores: 2 };
    assert.equal(streamIntervalFor("auto", { ...cpu, decodeThreads: 2 }), AUTO_STREAM_INTERVAL_MS);
    assert.equal(streamIntervalFor("auto", { ...cpu, decodeThreads: 3 }), AUTO_STREAM_INTERVAL_MS);
    assert.equal(streamIntervalFor("auto", { ...cpu, decodeThreads: 1 }), 0, "a core free for the JS thread");
    assert.equal(streamIntervalFor("auto", { gpuLayers: 13, cores: 2, decodeThreads: 2 }), 0, "on the GPU");
    assert.equal(streamIntervalFor("auto", { gpuLayers: 0, cores: 1, decodeThreads: 1 }), AUTO_STREAM_INTERVAL_MS);
    assert.equal(streamIntervalFor(0, { ...cpu, decodeThreads: 2 }), 0);
    assert.equal(streamIntervalFor(50, { gpuLayers: 13, cores: 2, decodeThreads: 1 }), 50, "a number is itself");
  });

  it("env names are INFERNO_ plus the key in SCREAMING_SNAKE", () => {
    assert.equal(envNameOf("port"), "INFERNO_PORT");
    assert.equal(envNameOf("modelsDir"), "INFERNO_MODELS_DIR");
    assert.equal(envNameOf("maxTokensLimit"), "INFERNO_MAX_TOKENS_LIMIT");
  });
});

describe("precedence: flag > env > file > default", () => {
  it("resolves each key from the highest source that sets it", async () => {
    const file = await configFile("layers.json", { host: "0.0.0.0", port: 1111, threads: 3, parallel: 6, logLevel: "warn" });
    const cfg = loadConfig({
      file,
      env: { INFERNO_PORT: "2222", INFERNO_THREADS: "4", INFERNO_PARALLEL: "7" },
      flags: { parallel: "8" },
    });
    assert.equal(cfg.host, "0.0.0.0", "file beats default");
    assert.equal(cfg.logLevel, "warn", "file beats default");
    assert.equal(cfg.port, 2222, "env beats file");
    assert.equal(cfg.threads, 4, "env beats file");
    assert.equal(cfg.parallel, 8, "flag beats env and file");
    assert.equal(cfg.gpu, "auto", "default when no source sets it");
    assert.equal(cfg.contextSize, 2048, "default when no source sets it");
  });

  it("a flag beats the file even when the env does not set the key", async () => {
    const file = await configFile("flag-vs-file.json", { contextSize: 512 });
    assert.equal(loadConfig({ file, env: {}, flags: { contextSize: "1024" } }).contextSize, 1024);
    assert.equal(loadConfig({ file, env: {} }).contextSize, 512);
  });

  it("a bad value in a lower source is fine when a higher one overrides it", async () => {
    const file = await configFile("overridden.json", { port: "not a port" });
    assert.equal(loadConfig({ file, env: { INFERNO_PORT: "9001" } }).port, 9001);
  });

  it("an empty env variable counts as unset", () => {
    assert.equal(loadConfig({ env: { INFERNO_PORT: "", INFERNO_HOST: "" } }).port, 8080);
  });

  it("finds the config file in flags.config, then sources.file, then INFERNO_CONFIG", async () => {
    const a = await configFile("a.json", { host: "a.example" });
    const b = await configFile("b.json", { host: "b.example" });
    const c = await configFile("c.json", { host: "c.example" });
    assert.equal(loadConfig({ flags: { config: a }, file: b, env: { INFERNO_CONFIG: c } }).host, "a.example");
    assert.equal(loadConfig({ file: b, env: { INFERNO_CONFIG: c } }).host, "b.example");
    assert.equal(loadConfig({ env: { INFERNO_CONFIG: c } }).host, "c.example");
  });
});

describe("env coercion", () => {
  it("turns numeric strings into numbers", () => {
    const cfg = loadConfig({ env: { INFERNO_PORT: "9000", INFERNO_CONTEXT_SIZE: "4096" } });
    assert.strictEqual(cfg.port, 9000);
    assert.strictEqual(cfg.contextSize, 4096);
  });

  it("turns boolean words into booleans", () => {
    assert.strictEqual(loadConfig({ env: { INFERNO_LOG_PRETTY: "false" } }).logPretty, false);
    assert.strictEqual(loadConfig({ env: { INFERNO_LOG_PRETTY: "true" } }).logPretty, true);
    assert.strictEqual(loadConfig({ env: { INFERNO_LOG_PRETTY: "0" } }).logPretty, false);
  });

  it("splits INFERNO_MODEL_ROOTS on the path delimiter into absolute paths", () => {
    const cfg = loadConfig({ env: { INFERNO_MODEL_ROOTS: ["a", "b"].join(path.delimiter) } });
    assert.deepEqual(cfg.modelRoots, [path.resolve("a"), path.resolve("b")]);
    assert.ok(cfg.modelRoots.every((r) => path.isAbsolute(r)));
  });

  it("keeps gpuLayers' words and reads its numbers", () => {
    assert.equal(loadConfig({ env: { INFERNO_GPU_LAYERS: "max" } }).gpuLayers, "max");
    assert.strictEqual(loadConfig({ env: { INFERNO_GPU_LAYERS: "12" } }).gpuLayers, 12);
  });

  it("resolves relative dirs from flags to absolute paths", () => {
    const cfg = loadConfig({ env: {}, flags: { modelsDir: "m", dataDir: "d", modelRoots: ["r"] } });
    assert.equal(cfg.modelsDir, path.resolve("m"));
    assert.equal(cfg.dataDir, path.resolve("d"));
    assert.deepEqual(cfg.modelRoots, [path.resolve("r")]);
  });
});

describe("bad values fail with a ConfigError naming the key and its origin", () => {
  it("a non-numeric port from a flag", () => {
    const err = configErrorOf(() => loadConfig({ env: {}, flags: { port: "abc" } }));
    assert.match(err.message, /"port"/);
    assert.match(err.message, /\(flag\)/);
  });

  it("INFERNO_THREADS=0 from the env", () => {
    const err = configErrorOf(() => loadConfig({ env: { INFERNO_THREADS: "0" } }));
    assert.match(err.message, /"threads"/);
    assert.match(err.message, /INFERNO_THREADS/);
  });

  it("a port out of range", () => {
    const err = configErrorOf(() => loadConfig({ env: { INFERNO_PORT: "70000" } }));
    assert.match(err.message, /"port"/);
  });

  it("a memory budget that is not auto, a size or a share; a share for VRAM", () => {
    const ram = configErrorOf(() => loadConfig({ env: { INFERNO_MEMORY_BUDGET: "lots" } }));
    assert.match(ram.message, /"memoryBudget" \(env INFERNO_MEMORY_BUDGET\): expected "auto", bytes, a size/);
    const vram = configErrorOf(() => loadConfig({ env: {}, flags: { vramBudget: "50%" } }));
    assert.match(vram.message, /"vramBudget"/);
    assert.equal(loadConfig({ env: { INFERNO_MEMORY_BUDGET: "12GiB" } }).memoryBudget, "12GiB");
  });

  it("a value not in an enum", () => {
    const err = configErrorOf(() => loadConfig({ env: {}, flags: { gpu: "tpu" } }));
    assert.match(err.message, /"gpu"/);
  });

  it("a bad value in the config file names the file", async () => {
    const file = await configFile("bad-port.json", { port: -1 });
    const err = configErrorOf(() => loadConfig({ file, env: {} }));
    assert.match(err.message, /"port"/);
    assert.ok(err.message.includes(file), err.message);
  });

  it("an unknown key in the config file", async () => {
    const file = await configFile("unknown.json", { host: "127.0.0.1", portt: 8080 });
    const err = configErrorOf(() => loadConfig({ file, env: {} }));
    assert.match(err.message, /portt/);
    assert.ok(err.message.includes(file), err.message);
  });

  it("several unknown keys, or a bad item inside a list, still name the file", async () => {
    const unknown = await configFile("unknowns.json", { portt: 1, hostt: "x" });
    const e1 = configErrorOf(() => loadConfig({ file: unknown, env: {} }));
    assert.match(e1.message, /portt/);
    assert.ok(e1.message.includes(unknown), e1.message);
    const nested = await configFile("nested.json", { modelRoots: ["ok", ""] });
    const e2 = configErrorOf(() => loadConfig({ file: nested, env: {} }));
    assert.match(e2.message, /"modelRoots\.1"/);
    assert.ok(e2.message.includes(nested), e2.message);
  });

  it("a config file that is not JSON", async () => {
    const file = await configFile("broken.json", "{ port: 8080, ");
    const err = configErrorOf(() => loadConfig({ file, env: {} }));
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, /JSON/);
  });

  it("a config file that holds an array or null rather than an object", async () => {
    for (const [name, content] of [["array.json", "[1, 2]"], ["null.json", "null"], ["number.json", "8080"]] as const) {
      const file = await configFile(name, content);
      const err = configErrorOf(() => loadConfig({ file, env: {} }));
      assert.ok(err.message.includes(file), err.message);
      assert.match(err.message, /object/);
    }
  });

  it("a config file that does not exist", () => {
    const file = path.join(dir, "missing.json");
    const err = configErrorOf(() => loadConfig({ env: { INFERNO_CONFIG: file } }));
    assert.ok(err.message.includes(file), err.message);
  });
});

describe("result", () => {
  it("is frozen, and so is its list of model roots", () => {
    const cfg = loadConfig({ env: { INFERNO_MODEL_ROOTS: "x" } });
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.modelRoots));
    assert.throws(() => {
      (cfg as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => (cfg.modelRoots as string[]).push("y"), TypeError);
    assert.equal(cfg.port, 8080);
  });

  it("leaves the caller's flags object untouched", async () => {
    const file = await configFile("untouched.json", {});
    const flags = { config: file, port: "1234" };
    loadConfig({ flags, env: {} });
    assert.deepEqual(flags, { config: file, port: "1234" });
  });
});
