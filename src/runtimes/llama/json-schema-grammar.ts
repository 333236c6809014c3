import type { Llama, LlamaGrammar } from "node-llama-cpp";

// node-llama-cpp's number rules allow 16-digit exponents ("1e999999" parses to Infinity) and exponents on
// integers ("5e-3"); these keep numbers finite and integers whole.
const NUMBER_RULES: Array<[RegExp, string]> = [
  [/^integer-number-rule ::= .*$/m, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})'],
  [/^fractional-number-rule ::= .*$/m, 'fractional-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?'],
];

/** Builds the grammar for a toGrammarSchema() result, with number rules that only produce finite numbers. */
export async function createJsonSchemaGrammar(llama: Llama, grammarSchema: Record<string, unknown>): Promise<LlamaGrammar> {
  const base = await llama.createGrammarForJsonSchema(grammarSchema as never);
  const text = NUMBER_RULES.reduce((g, [rule, fixed]) => g.replace(rule, fixed), base.grammar);
  if (text === base.grammar) return base;
  return llama.createGrammar({ grammar: text, stopGenerationTriggers: base.stopGenerationTriggers, trimWhitespaceSuffix: base.trimWhitespaceSuffix });
}
