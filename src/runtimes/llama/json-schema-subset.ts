import { InfernoError } from "../../errors/catalogue.js";
import { SchemaChecks, child, inferKinds, isObject, kindOf, type Json } from "./json-schema-checks.js";

// Client JSON Schemas (OpenAI response_format, Ollama format, tool parameters) -> the subset that
// node-llama-cpp's grammar builder understands. It silently ignores what it does not know, so every
// keyword is either translated here or refused with a 400: the output must always match the schema.
//
// Accepted:   type, enum, const, properties, required, additionalProperties, minProperties, maxProperties,
//             items, prefixItems, additionalItems, minItems, maxItems, uniqueItems (false, or maxItems <= 1),
//             minLength, maxLength, format, oneOf, anyOf, allOf (one subschema), $ref (local "#..." pointer),
//             $defs, definitions, nullable (OpenAPI), description.
// Dropped:    annotations that never reject a value (ANNOTATIONS); format other than date-time/time/date.
// Translated: anyOf -> oneOf (a value generated from one branch satisfies anyOf); type arrays -> oneOf of
//             single types; missing type -> inferred from keywords; {} / true -> any JSON value;
//             nullable -> allows null; refs -> root $defs; allOf [x] -> x; draft-07 tuple items -> prefixItems.
// Refused:    every other keyword, including pattern, patternProperties, minimum, maximum, exclusiveMinimum,
//             exclusiveMaximum, multipleOf, not, if/then/else, dependentRequired, dependentSchemas,
//             uniqueItems true, contains, minContains, maxContains, propertyNames, unevaluatedProperties,
//             unevaluatedItems; also a user oneOf whose branches could match the same value, since the
//             grammar may generate a value matching two branches.

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "example", "$schema", "$comment",
  "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "strict", "discriminator"]);
const KEYWORDS = new Set(["type", "enum", "const", "properties", "required", "additionalProperties", "minProperties",
  "maxProperties", "items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems", "minLength",
  "maxLength", "format", "oneOf", "anyOf", "allOf", "$ref", "$defs", "definitions", "nullable"]);
const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
// Lengths of what node-llama-cpp's format grammars emit (time always carries an offset, millis optional).
const FORMAT_LENGTHS: Record<string, [number, number]> = { date: [10, 10], time: [9, 18], "date-time": [20, 29] };
const MAX_DEPTH = 32;
const MAX_NODES = 2000;
const BAD_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff]/u;

// Defines rather than assigns, so a client key "__proto__" stays a key instead of replacing the prototype.
const put = (target: Json, key: string, value: unknown): void => {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
};
const anyValue = (): Json => ({
  oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "array" }, { type: "object", additionalProperties: true }],
});

class Translator {
  defs: Json = {};
  private nodes = 0;
  private refs = new Map<string, string>();
  private pending: Array<{ name: string; target: unknown; path: string }> = [];
  readonly defPaths = new Map<string, string>();
  private readonly checker = new SchemaChecks(this);

  constructor(private readonly root: unknown, readonly where: string, private readonly prefix: string) {}

  run(): Json {
    let out = this.translate(this.root, this.where, 0);
    for (let job = this.pending.shift(); job; job = this.pending.shift()) {
      put(this.defs, job.name, this.translate(job.target, job.path, 0));
    }
    this.checker.checkTermination();
    this.checker.checkAmbiguity(out);
    if (Object.keys(this.defs).length > 0 && !("$ref" in out || "oneOf" in out || out.type === "object" || out.type === "array")) {
      out = { oneOf: [out] }; // only these node-llama-cpp node kinds read $defs
    }
    return out;
  }

  fail(path: string, keyword: string, message: string): never {
    throw new InfernoError("INVALID_REQUEST", `${path}: ${message}`, { keyword, path }, { param: this.where });
  }

  translate(node: unknown, path: string, depth: number): Json {
    if (++this.nodes > MAX_NODES) this.fail(path, "", `schema has more than ${MAX_NODES} subschemas`);
    if (depth > MAX_DEPTH) this.fail(path, "", `schema is nested deeper than ${MAX_DEPTH} levels`);
    if (node === true) return anyValue();
    if (node === false) this.fail(path, "false", "the schema false accepts no value");
    if (!isObject(node)) this.fail(path, "", "a schema must be an object or a boolean");
    for (const key of Object.keys(node)) {
      if (ANNOTATIONS.has(key) || KEYWORDS.has(key) || (key === "$id" && depth === 0 && path === this.where)) continue;
      this.fail(child(path, key), key, `keyword "${key}" is not supported`);
    }
    let out = this.translateNode(node, path, depth);
    if (node.nullable === true) out = withNull(out);
    else if (node.nullable !== undefined && node.nullable !== false) this.fail(child(path, "nullable"), "nullable", "nullable must be a boolean");
    if (typeof node.description === "string") out.description = node.description;
    return out;
  }

  private translateNode(node: Json, path: string, depth: number): Json {
    const alone = (keyword: string): void => {
      const other = Object.keys(node).find((k) => KEYWORDS.has(k) && ![keyword, "nullable", "$defs", "definitions"].includes(k));
      if (other !== undefined) this.fail(child(path, other), other, `"${keyword}" combined with "${other}" is not supported`);
    };
    if (node.$ref !== undefined) {
      alone("$ref");
      return this.ref(node.$ref, child(path, "$ref"));
    }
    if (node.allOf !== undefined) {
      alone("allOf");
      if (!Array.isArray(node.allOf) || node.allOf.length !== 1) this.fail(child(path, "allOf"), "allOf", "allOf is only supported with exactly one subschema");
      return this.translate(node.allOf[0], child(child(path, "allOf"), 0), depth + 1);
    }
    for (const keyword of ["anyOf", "oneOf"]) {
      const branches = node[keyword];
      if (branches === undefined) continue;
      alone(keyword);
      const at = child(path, keyword);
      if (!Array.isArray(branches) || branches.length === 0) this.fail(at, keyword, `${keyword} must be a non-empty array`);
      const out = branches.map((b, i) => this.translate(b, child(at, i), depth + 1));
      if (keyword === "oneOf") this.checker.checkDisjoint(branches, at);
      return out.length === 1 ? (out[0] as Json) : { oneOf: out };
    }
    if (node.const !== undefined || node.enum !== undefined) return this.literals(node, path);
    const kinds = this.kinds(node, path);
    if (kinds.length === 0) return anyValue();
    const parts = kinds.map((kind): Json => {
      if (kind === "string") return this.string(node, path);
      if (kind === "object") return this.object(node, path, depth);
      if (kind === "array") return this.array(node, path, depth);
      return { type: kind };
    });
    if (parts.length === 1) return parts[0] as Json;
    const simple = parts.every((p) => Object.keys(p).length === 1 && typeof p.type === "string" && !["object", "array"].includes(p.type));
    return simple ? { type: parts.map((p) => p.type) } : { oneOf: parts };
  }

  private kinds(node: Json, path: string): string[] {
    if (node.type === undefined) return inferKinds(node);
    const types = Array.isArray(node.type) ? node.type : [node.type];
    if (types.length === 0) this.fail(child(path, "type"), "type", "type must not be an empty array");
    for (const t of types) {
      if (typeof t !== "string" || !TYPES.has(t)) this.fail(child(path, "type"), "type", `unknown type ${JSON.stringify(t)}`);
    }
    return [...new Set(types as string[])];
  }

  private literals(node: Json, path: string): Json {
    const list = node.enum;
    if (list !== undefined && (!Array.isArray(list) || list.length === 0)) this.fail(child(path, "enum"), "enum", "enum must be a non-empty array");
    const values: unknown[] = list === undefined ? [node.const] : node.const === undefined ? list : list.filter((v) => v === node.const);
    this.nodes += values.length;
    if (this.nodes > MAX_NODES) this.fail(path, "enum", `schema has more than ${MAX_NODES} subschemas and enum values`);
    values.forEach((v, i) => {
      const at = node.const !== undefined ? child(path, "const") : child(child(path, "enum"), i);
      if (!(v === null || ["string", "boolean"].includes(typeof v) || Number.isFinite(v))) {
        this.fail(at, node.const !== undefined ? "const" : "enum", "only string, number, boolean and null values are supported");
      }
      if (typeof v === "string") this.checkText(v, at, "enum");
    });
    const types = node.type === undefined ? undefined : this.kinds(node, path);
    const length = (s: string): number => [...s].length;
    const min = typeof node.minLength === "number" ? node.minLength : 0;
    const max = typeof node.maxLength === "number" ? node.maxLength : Infinity;
    const kept = [...new Set(values)].filter((v) => (types === undefined || types.includes(kindOf(v)) ||
        (types.includes("integer") && Number.isInteger(v))) && (typeof v !== "string" || (length(v) >= min && length(v) <= max)));
    if (kept.length === 0) this.fail(path, "enum", "no value of const/enum matches the other keywords");
    return kept.length === 1 ? { const: kept[0] } : { enum: kept };
  }

  private string(node: Json, path: string): Json {
    const [min, max] = this.checker.range(node, path, "minLength", "maxLength");
    if (node.format !== undefined && typeof node.format !== "string") this.fail(child(path, "format"), "format", "format must be a string");
    // format is an annotation in JSON Schema 2020-12: other formats (or ones the lengths rule out) are dropped.
    const lengths = typeof node.format === "string" ? FORMAT_LENGTHS[node.format] : undefined;
    if (lengths && min <= lengths[0] && (max ?? Infinity) >= lengths[1]) return { type: "string", format: node.format };
    return { type: "string", ...(min > 0 ? { minLength: min } : {}), ...(max !== undefined ? { maxLength: max } : {}) };
  }

  private object(node: Json, path: string, depth: number): Json {
    const props = node.properties ?? {};
    const required = node.required ?? [];
    const extra = node.additionalProperties;
    if (!isObject(props)) this.fail(child(path, "properties"), "properties", "properties must be an object");
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string")) this.fail(child(path, "required"), "required", "required must be an array of strings");
    const out: Json = {};
    for (const [key, schema] of Object.entries(props)) {
      const at = child(child(path, "properties"), key);
      this.checkText(key, at, "properties");
      if (schema === false) {
        if (required.includes(key)) this.fail(at, "required", `property "${key}" is required but its schema is false`);
        continue; // node-llama-cpp always emits every property, so a forbidden one is left out
      }
      put(out, key, this.translate(schema, at, depth + 1));
    }
    let additional: boolean | Json = extra === undefined ? Object.keys(props).length === 0 : typeof extra === "boolean" ? extra
      : this.translate(extra, child(path, "additionalProperties"), depth + 1);
    for (const name of required) {
      if (Object.hasOwn(out, name)) continue;
      if (extra === false) this.fail(child(path, "required"), "required", `"${name}" is required but not in properties, and additionalProperties is false`);
      this.checkText(name, child(path, "required"), "required");
      put(out, name, isObject(additional) ? additional : this.translate(true, child(path, "required"), depth + 1));
    }
    const n = Object.keys(out).length;
    const [min, max] = this.checker.range(node, path, "minProperties", "maxProperties");
    if (max !== undefined && max < n) this.fail(child(path, "maxProperties"), "maxProperties", `maxProperties is less than the ${n} properties, which are always generated`);
    if (min > n && additional === false) {
      if (extra === false) this.fail(child(path, "minProperties"), "minProperties", "minProperties needs more properties than additionalProperties false allows");
      additional = true;
    }
    return { type: "object", properties: out, additionalProperties: additional,
      ...(min > n ? { minProperties: min } : {}), ...(max !== undefined && additional !== false ? { maxProperties: max } : {}) };
  }

  private array(node: Json, path: string, depth: number): Json {
    const tuple = Array.isArray(node.items); // draft-07: items [..] + additionalItems
    if (tuple && node.prefixItems !== undefined) this.fail(child(path, "items"), "items", "items as an array cannot be combined with prefixItems");
    const prefixKey = tuple ? "items" : "prefixItems";
    const prefix = node[prefixKey];
    let items = tuple ? node.additionalItems : node.items;
    if (prefix !== undefined && !Array.isArray(prefix)) this.fail(child(path, prefixKey), prefixKey, `${prefixKey} must be an array`);
    let [min, max] = this.checker.range(node, path, "minItems", "maxItems");
    let outPrefix = ((prefix ?? []) as unknown[]).map((p, i) => this.translate(p, child(child(path, prefixKey), i), depth + 1));
    if (items === false) {
      max = Math.min(max ?? Infinity, outPrefix.length);
      if (min > max) this.fail(child(path, "minItems"), "minItems", "minItems is greater than the items allowed");
      items = undefined;
    }
    const outItems = items === undefined || items === true ? undefined : this.translate(items, child(path, tuple ? "additionalItems" : "items"), depth + 1);
    if (max !== undefined) outPrefix = outPrefix.slice(0, max); // node-llama-cpp would emit every prefix item
    if (node.uniqueItems !== undefined && node.uniqueItems !== false && !(node.uniqueItems === true && max !== undefined && max <= 1)) {
      this.fail(child(path, "uniqueItems"), "uniqueItems", 'keyword "uniqueItems" is not supported');
    }
    return { type: "array", ...(outItems ? { items: outItems } : {}), ...(outPrefix.length > 0 ? { prefixItems: outPrefix } : {}),
      ...(min > 0 ? { minItems: min } : {}), ...(max !== undefined ? { maxItems: max } : {}) };
  }

  private ref(ref: unknown, path: string): Json {
    if (typeof ref !== "string" || !(ref === "#" || ref.startsWith("#/"))) {
      this.fail(path, "$ref", `only local references ("#/...") are supported, got ${JSON.stringify(ref)}`);
    }
    let name = this.refs.get(ref);
    if (name === undefined) {
      const { target, targetPath } = this.resolve(ref, path);
      const base = (/^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(ref)?.[1] ?? "root").replace(/[^\w.-]/g, "_");
      name = `${this.prefix}${base}`;
      for (let i = 2; this.defPaths.has(name); i++) name = `${this.prefix}${base}_${i}`;
      this.refs.set(ref, name);
      this.defPaths.set(name, targetPath);
      this.pending.push({ name, target, path: targetPath });
    }
    return { $ref: `#/$defs/${name}` };
  }

  resolve(ref: string, path: string): { target: unknown; targetPath: string } {
    let target: unknown = this.root;
    let targetPath = this.where;
    for (const raw of ref === "#" ? [] : ref.slice(2).split("/")) {
      let key = raw;
      try { key = decodeURIComponent(raw); } catch { /* not percent-encoded */ }
      key = key.replaceAll("~1", "/").replaceAll("~0", "~");
      const next = Array.isArray(target) && /^\d+$/.test(key) ? target[Number(key)]
        : isObject(target) && Object.hasOwn(target, key) ? target[key] : undefined;
      if (next === undefined) this.fail(path, "$ref", `reference ${JSON.stringify(ref)} points to nothing`);
      targetPath = child(targetPath, Array.isArray(target) ? Number(key) : key);
      target = next;
    }
    return { target, targetPath };
  }

  private checkText(text: string, path: string, keyword: string): void {
    if (BAD_CHARS.test(text)) this.fail(path, keyword, "control characters and lone surrogates are not supported in property names and values");
  }
}

function withNull(s: Json): Json {
  if (Array.isArray(s.enum)) return s.enum.includes(null) ? s : { ...s, enum: [...s.enum, null] };
  if (s.const !== undefined) return s.const === null ? s : { enum: [s.const, null] };
  const simple = Object.keys(s).length === 1 && (Array.isArray(s.type) || (typeof s.type === "string" && !["object", "array"].includes(s.type)));
  if (simple) return { type: [...new Set([...(Array.isArray(s.type) ? s.type : [s.type]), "null"])] };
  return { oneOf: [s, { type: "null" }] };
}

// Results pass through untranslated: translating again would read anyOf-made oneOfs as the client's own oneOf.
const translated = new WeakSet<object>();
const done = (schema: Json): Json => {
  translated.add(schema);
  return schema;
};

/** Translates a client JSON Schema into node-llama-cpp's grammar subset, or throws a 400 InfernoError naming the path. */
export function toGrammarSchema(schema: unknown, where = "schema"): Record<string, unknown> {
  if (isObject(schema) && translated.has(schema)) return schema;
  return done(translateWithDefs(schema, where, ""));
}

function translateWithDefs(schema: unknown, where: string, prefix: string, defs?: Json): Json {
  if (schema !== true && !isObject(schema)) {
    throw new InfernoError("INVALID_REQUEST", `${where}: a schema must be a JSON object`, { keyword: "", path: where }, { param: where });
  }
  const t = new Translator(schema, where, prefix);
  const out = t.run();
  if (defs) for (const [name, def] of Object.entries(t.defs)) put(defs, name, def);
  else if (Object.keys(t.defs).length > 0) out.$defs = t.defs;
  return out;
}

/** The schema of one forced tool call, `{"name": ..., "arguments": ...}`, for a named tool or any tool ("required"). */
export function toolCallSchema(tools: Array<{ name: string; parameters?: unknown }>, choice: { name: string } | "required"): Record<string, unknown> {
  const defs: Json = {};
  const call = (index: number): Json => {
    const tool = tools[index] as { name: string; parameters?: unknown };
    if (BAD_CHARS.test(tool.name)) {
      throw new InfernoError("INVALID_REQUEST", `tools[${index}].function.name: control characters are not supported`, { keyword: "name", path: `tools[${index}].function.name` }, { param: "tools" });
    }
    const args = tool.parameters === undefined ? { type: "object", properties: {}, additionalProperties: false }
      : translateWithDefs(tool.parameters, `tools[${index}].function.parameters`, `t${index}_`, defs);
    return { type: "object", properties: { name: { const: tool.name }, arguments: args }, additionalProperties: false };
  };
  let out: Json;
  if (choice === "required") {
    if (tools.length === 0) throw new InfernoError("INVALID_REQUEST", 'tool_choice is "required" but no tools were given', { keyword: "tool_choice", path: "tool_choice" }, { param: "tool_choice" });
    out = tools.length === 1 ? call(0) : { oneOf: tools.map((_, i) => call(i)) };
  } else {
    const index = tools.findIndex((t) => t.name === choice.name);
    if (index < 0) throw new InfernoError("INVALID_REQUEST", `tool_choice names an unknown tool "${choice.name}"`, { keyword: "tool_choice", path: "tool_choice" }, { param: "tool_choice" });
    out = call(index);
  }
  return done(Object.keys(defs).length > 0 ? { ...out, $defs: defs } : out);
}
