// What the scale-out tests share: a real redis-server, a webhook receiver and a tiny GGUF for `inferno serve`
// replicas started on them, each with its own data dir and a shared one. Everything stops when the test ends.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { serveCli, type ServedCli } from "./cli.js";
import { tempDir } from "./paths.js";
import { startRedis } from "./redis.js";
import { webhookReceiver } from "./webhook-receiver.js";

export async function startFleet(t: TestContext, prefix: string) {
  const redis = await startRedis();
  const { dir, cleanup } = await tempDir(prefix);
  const recv = await webhookReceiver();
  const replicas: ServedCli[] = [];
  t.after(async () => {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    await recv.close();
    await redis.close();
    await cleanup();
  });
  const models = path.join(dir, "models");
  await mkdir(models, { recursive: true });
  await writeTinyLlamaGguf(path.join(models, "tiny.gguf"));
  /** Starts replica `i` (replica id `r<i>`, its own data dir) with `flags` besides the fleet's; again on the same dir after a kill. */
  const serve = async (i: number, flags: string[]): Promise<ServedCli> => {
    const replica = await serveCli([
      "--models-dir", models, "--data-dir", path.join(dir, `data-${i}`), "--shared-data-dir", path.join(dir, "shared"),
      "--redis-url", redis.url, "--replica-id", `r${i}`, "--webhook-allow-private", ...flags,
    ]);
    replicas.push(replica);
    return replica;
  };
  return { redis, recv, serve };
}
