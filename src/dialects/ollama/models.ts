import { requireCapability, type Capability } from "../../core/capabilities.js";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { controlsModels, requireModelControl } from "../../auth/model-control.js";
import type { Principal } from "../../auth/principal.js";
import { parseKeepAlive } from "../../core/duration.js";
import { defaultSampling } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelEntry, ModelFacts, ModelRegistry } from "../../registry/model-registry.js";
import type { LoadedModel } from "../../runtimes/loaded-model.js";

/** The only tag a model has here: every model is its own `:latest`. */
const TAG = ":latest";
/** What `expires_at` says for a model kept loaded forever (Ollama also answers a far-future time). */
const NEVER = "9999-12-31T23:59:59Z";

/** Ollama name → model id: `ID` and `ID:latest` name the model; any other tag names nothing. */
export function modelIdOf(name: string): string {
  const id = name.endsWith(TAG) ? name.slice(0, -TAG.length) : name;
  if (id.includes(":") || id === "") throw new InfernoError("MODEL_NOT_FOUND", `model '${name}' not found`, { model: name });
  return id;
}

/** `keep_alive` → ms (null: forever); undefined when absent. A value that is no duration is a 400. */
export function keepAliveOf(value: string | number | null | undefined): number | null | undefined {
  if (value == null) return undefined;
  const ms = parseKeepAlive(value);
  if (ms === undefined) {
    throw new InfernoError("INVALID_REQUEST", `keep_alive: invalid duration '${value}'`, undefined, { param: "keep_alive" });
  }
  return ms;
}

/** RFC 3339 time, as Ollama writes it. */
export const timestamp = (ms = Date.now()) => new Date(ms).toISOString();

/** Nanoseconds (Ollama reports every duration in integer ns). */
export const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/** Ollama's human parameter counts: "7B", "1.2B", "494.03M", "260K". */
export function parameterSize(n: number): string {
  const fmt = (v: number, unit: string, digits: number) => (Number.isInteger(v) ? `${v}${unit}` : `${v.toFixed(digits)}${unit}`);
  if (n >= 1e9) return fmt(n / 1e9, "B", 1);
  if (n >= 1e6) return fmt(n / 1e6, "M", 2);
  if (n >= 1e3) return `${Math.round(n / 1e3)}K`;
  return String(n);
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const num = (v: unknown) => (typeof v === "number" ? v : undefined);

const factsOf = (registry: ModelRegistry, entry: ModelEntry) => registry.facts(entry).catch((): ModelFacts | undefined => undefined);

export function detailsOf(entry: ModelEntry, facts: ModelFacts | undefined) {
  const family = str(facts?.architecture) ?? "";
  const parameters = num(facts?.parameters);
  return {
    parent_model: "",
    format: entry.type,
    family,
    families: family ? [family] : null,
    parameter_size: parameters === undefined ? "" : parameterSize(parameters),
    quantization_level: str(facts?.quantization) ?? "",
  };
}

/**
 * Ollama's digest is the sha256 of the weights; hashing multi-GB files on every listing is far too
 * slow, so ours is a sha256 of (real path, size, mtime): stable while the file is unchanged, and
 * different once it is replaced. It identifies a file here; it is not a content hash.
 */
async function fileInfo(entry: ModelEntry): Promise<{ digest: string; modifiedAt: string; size: number }> {
  const st = await fs.stat(entry.path).catch(() => undefined);
  const size = st?.size ?? entry.sizeBytes;
  const mtime = st?.mtimeMs ?? entry.created * 1000;
  const digest = createHash("sha256").update(`${entry.path}\0${size}\0${mtime}`).digest("hex");
  return { digest, modifiedAt: timestamp(mtime), size };
}

/** One `GET /api/tags` entry. */
export async function tagEntry(registry: ModelRegistry, entry: ModelEntry) {
  const [info, facts] = await Promise.all([fileInfo(entry), factsOf(registry, entry)]);
  const name = entry.id + TAG;
  return { name, model: name, modified_at: info.modifiedAt, size: info.size, digest: info.digest, details: detailsOf(entry, facts) };
}

/** One `GET /api/ps` entry: size is what the loaded model holds in memory. */
export async function psEntry(registry: ModelRegistry, id: string, model: LoadedModel) {
  const entry = await registry.get(id);
  const [info, facts] = await Promise.all([fileInfo(entry), factsOf(registry, entry)]);
  const expires = registry.expiresAt(id);
  const memory = model.memoryUsage();
  return {
    name: id + TAG,
    model: id + TAG,
    size: memory.ram + memory.vram,
    digest: info.digest,
    details: detailsOf(entry, facts),
    expires_at: expires === null ? NEVER : timestamp(expires),
    size_vram: memory.vram,
    ...(model.contextSize !== null ? { context_length: model.contextSize } : {}),
  };
}

/** Ollama's names for the capabilities it has (it has no reranking or tensor models). */
const OLLAMA_CAPABILITY: Partial<Record<Capability, string>> = { "text-generation": "completion", embeddings: "embedding" };

/** The server's sampling defaults as Modelfile parameters (they apply to every model and every dialect). */
const PARAMETERS: Array<[string, number]> = [
  ["temperature", defaultSampling.temperature],
  ["top_k", defaultSampling.topK],
  ["top_p", defaultSampling.topP],
  ["min_p", defaultSampling.minP],
  ["repeat_penalty", defaultSampling.repeatPenalty],
];

/** `POST /api/show`: what Ollama shows, from the file header (the model need not be loaded). */
export async function showModel(registry: ModelRegistry, entry: ModelEntry) {
  const [info, facts] = await Promise.all([fileInfo(entry), factsOf(registry, entry)]);
  const template = str(facts?.chat_template) ?? "";
  const parameters = PARAMETERS.map(([k, v]) => `${k.padEnd(15)}${v}`).join("\n");
  // FROM names the file only: the server's folder layout is not the client's business.
  const modelfile = [
    `# Modelfile generated by Inferno for ${entry.id}${TAG}`,
    `FROM ${path.basename(entry.path)}`,
    ...(template ? [`TEMPLATE """${template}"""`] : []),
    ...PARAMETERS.map(([k, v]) => `PARAMETER ${k} ${v}`),
    "",
  ].join("\n");
  return {
    license: "",
    modelfile,
    parameters,
    template,
    system: "",
    details: detailsOf(entry, facts),
    model_info: facts ? modelInfo(facts) : {},
    capabilities: (await registry.capabilities(entry).catch(() => ({ capabilities: [] }))).capabilities.flatMap((c) => OLLAMA_CAPABILITY[c] ?? []),
    modified_at: info.modifiedAt,
  };
}

/** GGUF keys in the form Ollama's model_info uses. */
function modelInfo(facts: ModelFacts): Record<string, unknown> {
  const arch = str(facts.architecture) ?? "unknown";
  const pairs: Array<[string, unknown]> = [
    ["general.architecture", arch],
    ["general.name", facts.name],
    ["general.parameter_count", facts.parameters],
    ["general.quantization", facts.quantization],
    [`${arch}.context_length`, facts.context_length],
    [`${arch}.embedding_length`, facts.embedding_length],
    [`${arch}.block_count`, facts.block_count],
    [`${arch}.vocab_size`, facts.vocab_size],
    [`${arch}.pooling_type`, facts.pooling_type],
    ["tokenizer.ggml.bos_token_id", facts.bos_token_id],
    ["tokenizer.ggml.eos_token_id", facts.eos_token_id],
  ];
  return Object.fromEntries(pairs.filter(([, v]) => v !== undefined));
}

/** The context each loaded model was asked for with `num_ctx` (llama.cpp may round the size it gets). */
const askedContext = new WeakMap<LoadedModel, number>();

/**
 * Makes sure a text model is loaded, reloading it when `num_ctx` asks for another context size
 * (capped at the trained context, as Ollama does; a reload while it serves requests is a 409).
 * Only a principal that controls models (src/auth/model-control.ts) reloads: a user gets the model as
 * it is, loaded with its defaults if it was not, when its context holds `num_ctx`, else a 403.
 * A keep_alive other than 0 applies at once, so an earlier request's 0 cannot unload the model before
 * this one starts; 0 waits for `applyKeepAlive` at the end. Returns the ms spent loading (0 if loaded).
 */
export async function prepareTextModel(
  registry: ModelRegistry,
  id: string,
  numCtx: number | null | undefined,
  keepAlive: number | null | undefined,
  principal: Principal | undefined,
  capability: Capability,
): Promise<number> {
  const entry = await registry.get(id);
  requireCapability(id, await registry.capabilities(entry), capability);
  const started = performance.now();
  const before = registry.getLoaded(id);
  let model: LoadedModel;
  if (numCtx == null) {
    model = await registry.acquire(id);
  } else {
    const trained = num((await factsOf(registry, entry))?.contextLength);
    const want = Math.max(64, Math.min(numCtx, trained ?? numCtx, 1 << 20));
    const current = before && (before.contextSize === want || askedContext.get(before) === want);
    if (current) {
      model = await registry.acquire(id);
    } else if (controlsModels(principal)) {
      model = await registry.load(id, { context_size: want });
      askedContext.set(model, want);
    } else {
      model = await registry.acquire(id);
      const has = askedContext.get(model) ?? model.contextSize ?? 0;
      if (has < want) {
        requireModelControl(principal, `options.num_ctx ${numCtx} would reload model '${id}' (its context is ${has} tokens); reloading a model`, {
          model: id,
          context_size: has,
        });
      }
    }
  }
  if (keepAlive !== 0) applyKeepAlive(registry, id, keepAlive);
  return model === before ? 0 : performance.now() - started;
}

/** Applies a request's keep_alive once it is served; the registry unloads when idle, never mid-request. */
export function applyKeepAlive(registry: ModelRegistry, id: string, ms: number | null | undefined): void {
  if (ms !== undefined && registry.getLoaded(id)) registry.setKeepAlive(id, ms);
}
