import { loadConfig } from "../config/config.js";
import { createProgressBar } from "../pull/progress-bar.js";
import { pullModel } from "../pull/pull-model.js";

/** `inferno pull SOURCE`: download into the models dir, resumable, verified, with a progress bar on stderr. */
export async function pull(source: string, flags: Record<string, unknown>, opts: { name?: string; sha256?: string; force?: boolean; json?: boolean }) {
  const config = loadConfig({ flags });
  const bar = createProgressBar(process.stderr);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted; run the same command again to resume"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const result = await pullModel({
      source,
      modelsDir: config.modelsDir,
      ...(opts.name ? { name: opts.name } : {}),
      ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
      ...(opts.force ? { force: true } : {}),
      hfEndpoint: config.hfEndpoint,
      signal: controller.signal,
      onProgress: (p) => bar.update(p),
    });
    bar.done();
    if (opts.json) console.log(JSON.stringify(result));
    else console.log(`pulled ${result.id} (${result.bytes} bytes, sha256 ${result.sha256}) into ${result.path}`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
