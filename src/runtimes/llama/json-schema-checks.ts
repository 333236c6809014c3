// The limits json-schema-subset.ts enforces beyond keyword support: counts llama.cpp can repeat, recursion the
// model can leave, alternatives that do not blow up llama.cpp's parse stacks, and oneOf branches that never
// match the same value.

export type Json = Record<string, unknown>;

const ALL_KINDS = ["string", "number", "boolean", "null", "object", "array"];
// llama.cpp refuses a {m,n} repetition once m or n times the repeated symbols (up to 3 for array items and
// extra properties) nears 2000, and past 2000 silently stops enforcing it.
const MAX_LENGTH = 1000;
const MAX_COUNT = 500;
const MAX_ONEOF_CHECKS = 20_000;
// llama.cpp keeps a parse stack per grammar alternative that still fits the text; alternatives that start alike
// multiply through nesting (16 nested two-way anyOfs of arrays: ~0.8 s per token with a 350-token vocabulary).
const MAX_AMBIGUITY = 256;

export const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));
export const child = (path: string, key: string | number): string =>
  typeof key === "number" ? `${path}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
export const kindOf = (v: unknown): string => (v === null ? "null" : typeof v);

/** What the checks read from a translation in progress, and how they report a refusal. */
export interface CheckedTranslation {
  readonly where: string;
  readonly defs: Json;
  readonly defPaths: ReadonlyMap<string, string>;
  fail(path: string, keyword: string, message: string): never;
  resolve(ref: string, path: string): { target: unknown; targetPath: string };
}

/** The checks for one translation; the oneOf work budget is shared by all its oneOfs. */
export class SchemaChecks {
  private checks = 0;

  constructor(private readonly t: CheckedTranslation) {}

  private count(node: Json, keyword: string, path: string): number | undefined {
    const cap = keyword.endsWith("Length") ? MAX_LENGTH : MAX_COUNT;
    const v = node[keyword];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.t.fail(child(path, keyword), keyword, `${keyword} must be a non-negative integer`);
    if (v > cap) this.t.fail(child(path, keyword), keyword, `${keyword} above ${cap} is not supported`);
    return v;
  }

  // A min/max keyword pair, refused past what llama.cpp enforces.
  range(node: Json, path: string, minKey: string, maxKey: string): [number, number | undefined] {
    const min = this.count(node, minKey, path) ?? 0;
    const max = this.count(node, maxKey, path);
    if (max !== undefined && min > max) this.t.fail(child(path, minKey), minKey, `${minKey} is greater than ${maxKey}`);
    return [min, max];
  }

  // A recursive $ref the model could enter but never leave (e.g. an object whose property refers to the object).
  checkTermination(): void {
    const ends = new Set<string>();
    const finite = (s: unknown): boolean => {
      if (!isObject(s)) return true;
      if (typeof s.$ref === "string") return ends.has(s.$ref.slice("#/$defs/".length));
      if (Array.isArray(s.oneOf)) return s.oneOf.some(finite);
      if (s.type === "object") {
        const props = Object.values(s.properties as Json);
        return props.every(finite) && !((s.minProperties as number ?? 0) > props.length && !finite(s.additionalProperties));
      }
      if (s.type === "array") {
        const prefix = (s.prefixItems ?? []) as unknown[];
        return prefix.every(finite) && !((s.minItems as number ?? 0) > prefix.length && !finite(s.items));
      }
      return true;
    };
    for (let before = -1; before !== ends.size;) {
      before = ends.size;
      for (const [name, def] of Object.entries(this.t.defs)) if (finite(def)) ends.add(name);
    }
    const stuck = Object.keys(this.t.defs).find((name) => !ends.has(name));
    if (stuck !== undefined) this.t.fail(this.t.defPaths.get(stuck) ?? this.t.where, "$ref", "this schema refers to itself with no way to end (every property is always generated, so recursion must go through an array, anyOf or nullable)");
  }

  // Bounds the parse stacks llama.cpp may hold at once; a recursive $ref counts once, so recursion is not bounded.
  checkAmbiguity(root: Json): void {
    const memo = new Map<string, number>();
    const start = (s: Json): string => {
      const values = literalsOf(s);
      const kinds = values ? [...new Set(values.map(kindOf))] : typeof s.type === "string" ? [s.type === "integer" ? "number" : s.type] : ["?"];
      return kinds.length === 1 ? (kinds[0] as string) : "?";
    };
    const stacks = (s: unknown): number => {
      if (!isObject(s)) return 1;
      if (typeof s.$ref === "string") {
        const name = s.$ref.slice("#/$defs/".length);
        if (!memo.has(name)) memo.set(name, 1).set(name, stacks(this.t.defs[name]));
        return memo.get(name) as number;
      }
      if (Array.isArray(s.oneOf)) {
        const groups = new Map<string, number>();
        const leaves = new Set<string>(); // scalars end within a few tokens, so alike ones count once
        for (const branch of s.oneOf) {
          const key = isObject(branch) ? start(branch) : "?";
          const leaf = isObject(branch) && !("$ref" in branch || "oneOf" in branch || branch.type === "object" || branch.type === "array");
          if (leaf && leaves.has(key)) continue;
          if (leaf) leaves.add(key);
          groups.set(key, (groups.get(key) ?? 0) + stacks(branch));
        }
        const mixed = groups.get("?") ?? 0; // may start like any other branch
        return Math.max(...[...groups.values()].map((n) => n + mixed));
      }
      const children = [...Object.values((s.properties ?? {}) as Json), s.additionalProperties, ...((s.prefixItems ?? []) as unknown[]), s.items];
      return Math.max(1, ...children.map(stacks));
    };
    if (stacks(root) > MAX_AMBIGUITY) {
      this.t.fail(this.t.where, "anyOf", `alternatives that start alike (anyOf/oneOf/type arrays of the same kind) are nested too deeply: up to ${MAX_AMBIGUITY} are supported`);
    }
  }

  // oneOf needs exactly one branch to match; prove that no generated value can match two of them.
  checkDisjoint(branches: unknown[], path: string): void {
    const values = branches.map((b) => this.deref(b)).map((b) => (isObject(b) ? literalsOf(b) : undefined));
    if (values.every((v) => v?.length === 1)) { // oneOf of consts (an enum with a description per value)
      const flat = values.map((v) => v?.[0]);
      if (new Set(flat).size === flat.length) return;
    }
    for (let i = 0; i < branches.length; i++) {
      for (let j = i + 1; j < branches.length; j++) {
        const apart = this.disjoint(branches[i], branches[j], 0);
        if (this.checks > MAX_ONEOF_CHECKS) this.t.fail(path, "oneOf", "oneOf is too large to prove that its branches never overlap; use anyOf");
        if (!apart) {
          this.t.fail(path, "oneOf", `branches ${i} and ${j} may match the same value, which "oneOf" forbids; use "anyOf" if that is intended`);
        }
      }
    }
  }

  private deref(s: unknown): unknown {
    for (let i = 0; i < 8; i++) {
      if (!isObject(s)) return s;
      if (typeof s.$ref === "string") s = this.t.resolve(s.$ref, this.t.where).target;
      else if (Array.isArray(s.allOf) && s.allOf.length === 1) s = s.allOf[0];
      else return s;
    }
    return true; // a chain of refs too long to follow: treat as "anything"
  }

  private disjoint(a: unknown, b: unknown, depth: number): boolean {
    if (++this.checks > MAX_ONEOF_CHECKS || depth > 8) return false;
    a = this.deref(a);
    b = this.deref(b);
    for (const [x, y] of [[a, b], [b, a]]) {
      const branches = isObject(x) ? x.oneOf ?? x.anyOf : undefined;
      if (Array.isArray(branches)) return branches.every((br) => this.disjoint(br, y, depth + 1));
    }
    return this.cannotAccept(a, b, depth) && this.cannotAccept(b, a, depth);
  }

  // True when nothing generated from `gen` is accepted by `acc` (conservative: false when unsure).
  private cannotAccept(gen: unknown, acc: unknown, depth: number): boolean {
    if (!isObject(gen) || !isObject(acc)) return false;
    const genKinds = kindsOf(gen, true);
    const accKinds = kindsOf(acc, false);
    if (!genKinds.some((k) => accKinds.includes(k))) return true;
    const genValues = literalsOf(gen);
    const accValues = literalsOf(acc);
    if (genValues && accValues) return !genValues.some((v) => accValues.includes(v));
    if (genKinds.length !== 1 || genKinds[0] !== "object" || !isObject(gen.properties) || !isObject(acc.properties)) return false;
    const accProps = acc.properties;
    return Object.entries(gen.properties).some(([key, schema]) =>
      schema !== false && Object.hasOwn(accProps, key) && this.disjoint(schema, accProps[key], depth + 1));
  }
}

// Without "type", the keywords present say which kinds to generate (a narrowing: the schema accepts all kinds).
export function inferKinds(node: Json): string[] {
  const has = (...keys: string[]): boolean => keys.some((k) => node[k] !== undefined);
  return [
    ...(has("properties", "required", "additionalProperties", "minProperties", "maxProperties") ? ["object"] : []),
    ...(has("items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems") ? ["array"] : []),
    ...(has("minLength", "maxLength") ? ["string"] : []),
  ];
}

function literalsOf(s: Json): unknown[] | undefined {
  const values = s.const !== undefined ? [s.const] : Array.isArray(s.enum) ? s.enum : undefined;
  return values && s.nullable === true ? [...values, null] : values;
}

// Kinds of JSON value a schema accepts or (gen) that its translation generates.
function kindsOf(s: Json, gen: boolean): string[] {
  const values = literalsOf(s);
  const types = Array.isArray(s.type) ? s.type : typeof s.type === "string" ? [s.type] : undefined;
  let kinds = values ? values.map(kindOf) : types ? types.map((t) => (t === "integer" ? "number" : String(t))) : ALL_KINDS;
  if (!values && !types && gen && s.oneOf === undefined && s.anyOf === undefined && inferKinds(s).length > 0) kinds = inferKinds(s);
  return s.nullable === true ? [...kinds, "null"] : kinds;
}
