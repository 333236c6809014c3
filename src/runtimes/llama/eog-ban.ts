// `ignore_eos` and `min_tokens` as llama-server does them: every token the model marks end-of-generation
// gets a logit bias of -inf, so it is never sampled (and never shows up as text), rather than being
// sampled and then skipped, which would change what the model sees next.
import { TokenBias, type LlamaModel, type SequenceEvaluateOptions, type Token } from "node-llama-cpp";
import type { GenerateRequest } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";

const bans = new WeakMap<LlamaModel, TokenBias>();

/**
 * A bias of -inf on every end-of-generation token of the vocabulary (EOS, EOT, EOM, ...), built once per
 * model. `TokenBias.set` skips end-of-generation tokens on purpose, so the map it hands to the sampler
 * is filled directly; that map is internal to node-llama-cpp, hence the check that it is still there.
 */
export function eogBan(model: LlamaModel, vocabularySize: number): TokenBias {
  let bias = bans.get(model);
  if (bias) return bias;
  bias = new TokenBias(model.tokenizer);
  const biases = (bias as unknown as { _biases?: unknown })._biases;
  if (!(biases instanceof Map)) throw new InfernoError("INTERNAL_ERROR", "node-llama-cpp's TokenBias no longer holds a bias map: ignore_eos needs updating");
  for (let t = 0; t < vocabularySize; t++) if (model.isEogToken(t as Token)) biases.set(t, -Infinity);
  bans.set(model, bias);
  return bias;
}

/** Whether a request needs the ban at all. */
export const wantsEogBan = (req: GenerateRequest): boolean => req.ignoreEos === true || (req.minTokens ?? 0) > 0;

/**
 * Refuses the length controls under a grammar: once a grammar is complete it allows only an
 * end-of-generation token, so banning those leaves nothing to sample.
 */
export function checkEogBan(req: GenerateRequest): void {
  if (!req.format || !wantsEogBan(req)) return;
  const param = req.ignoreEos ? "ignore_eos" : "min_tokens";
  throw new InfernoError("INVALID_REQUEST", `${param} cannot be combined with structured output (a JSON format or a forced tool call)`, undefined, {
    param,
  });
}

/**
 * The `tokenBias` option for a request: the ban throughout (ignore_eos), or while fewer than minTokens
 * tokens have been generated (`generated` is read when each token is sampled).
 */
export function eogBanOption(
  model: LlamaModel,
  ban: TokenBias | undefined,
  req: GenerateRequest,
  generated: () => number,
): Pick<SequenceEvaluateOptions, "tokenBias"> {
  if (!ban) return {};
  if (req.ignoreEos) return { tokenBias: ban };
  const minTokens = req.minTokens ?? 0;
  const none = new TokenBias(model.tokenizer);
  return { tokenBias: () => (generated() < minTokens ? ban : none) };
}
