import type { Llama, LlamaGrammar } from "node-llama-cpp";
import type { OutputFormat } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import { createJsonSchemaGrammar } from "./json-schema-grammar.js";
import { toGrammarSchema } from "./json-schema-subset.js";

const MAX_ENTRIES = 64;

/** Compiled grammars by format, least recently used dropped first: clients resend the same schema. */
export class GrammarCache {
  private readonly cache = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly llama: Llama) {}

  get(format: OutputFormat): Promise<LlamaGrammar> {
    const schema = format.type === "json_schema" ? toGrammarSchema(format.schema, "schema") : undefined;
    const key = schema ? JSON.stringify(schema) : "json";
    let grammar = this.cache.get(key);
    if (grammar) {
      this.cache.delete(key);
    } else {
      grammar = (schema ? createJsonSchemaGrammar(this.llama, schema) : this.llama.getGrammarFor("json")).catch((err: unknown) => {
        this.cache.delete(key);
        throw new InfernoError("INVALID_REQUEST", `schema cannot be turned into a grammar: ${(err as Error).message}`, undefined, {
          param: "response_format",
        });
      });
    }
    this.cache.set(key, grammar);
    if (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return grammar;
  }
}
