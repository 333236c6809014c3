// Pure tests of the JSON Schema -> node-llama-cpp subset translation (no model needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { InfernoError } from "../../src/errors/catalogue.js";
import { toGrammarSchema, toolCallSchema } from "../../src/runtimes/llama/json-schema-subset.js";

const ANY = {
  oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "array" }, { type: "object", additionalProperties: true }],
};

/** Asserts that translating `schema` is refused with a 400 whose message starts with `message`. */
function refused(schema: unknown, message: string | RegExp, where?: string): InfernoError {
  let caught: unknown;
  try {
    toGrammarSchema(schema, where);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof InfernoError, `expected an InfernoError, got ${String(caught)}`);
  assert.equal(caught.code, "INVALID_REQUEST");
  assert.equal(caught.status, 400);
  if (typeof message === "string") assert.ok(caught.message.startsWith(message), caught.message);
  else assert.match(caught.message, message);
  return caught;
}

test("{} and true become any JSON value; description is kept", () => {
  assert.deepEqual(toGrammarSchema({}), ANY);
  assert.deepEqual(toGrammarSchema(true), ANY);
  assert.deepEqual(toGrammarSchema({ description: "anything" }), { ...ANY, description: "anything" });
  assert.deepEqual(toGrammarSchema({ format: "email" }), ANY);
});

test("annotations are dropped", () => {
  const schema = {
    $schema: "https://json-schema.org/draft/2020-12/schema", $id: "urn:x", $comment: "c", title: "T", default: "x",
    examples: ["x"], example: "x", deprecated: false, readOnly: true, writeOnly: false, contentEncoding: "base64",
    contentMediaType: "text/plain", strict: true, type: "string",
  };
  assert.deepEqual(toGrammarSchema(schema), { type: "string" });
});

test("string lengths and formats", () => {
  assert.deepEqual(toGrammarSchema({ type: "string", minLength: 0, maxLength: 8 }), { type: "string", maxLength: 8 });
  for (const format of ["date", "time", "date-time"]) {
    assert.deepEqual(toGrammarSchema({ type: "string", format }), { type: "string", format });
  }
  // format is an annotation: unknown formats, or ones the lengths rule out, become plain strings
  assert.deepEqual(toGrammarSchema({ type: "string", format: "email", minLength: 3 }), { type: "string", minLength: 3 });
  assert.deepEqual(toGrammarSchema({ type: "string", format: "date", maxLength: 5 }), { type: "string", maxLength: 5 });
  assert.deepEqual(toGrammarSchema({ type: "string", format: "date", maxLength: 10 }), { type: "string", format: "date" });
  refused({ type: "string", minLength: 5, maxLength: 2 }, "schema.minLength: minLength is greater than maxLength");
  refused({ type: "string", maxLength: 1001 }, "schema.maxLength: maxLength above 1000 is not supported");
  refused({ type: "string", maxLength: 1.5 }, "schema.maxLength: maxLength must be a non-negative integer");
});

test("type arrays, inferred types and anyOf", () => {
  assert.deepEqual(toGrammarSchema({ type: ["integer", "null"] }), { type: ["integer", "null"] });
  assert.deepEqual(toGrammarSchema({ type: ["object", "null"], properties: { a: { type: "boolean" } } }), {
    oneOf: [{ type: "object", properties: { a: { type: "boolean" } }, additionalProperties: false }, { type: "null" }],
  });
  assert.deepEqual(toGrammarSchema({ type: ["string", "integer"], maxLength: 3 }), { oneOf: [{ type: "string", maxLength: 3 }, { type: "integer" }] });
  assert.deepEqual(toGrammarSchema({ items: { type: "integer" } }), { type: "array", items: { type: "integer" } });
  assert.deepEqual(toGrammarSchema({ maxLength: 2 }), { type: "string", maxLength: 2 });
  assert.deepEqual(toGrammarSchema({ properties: { a: { type: "null" } }, minItems: 1 }), {
    oneOf: [{ type: "object", properties: { a: { type: "null" } }, additionalProperties: false }, { type: "array", minItems: 1 }],
  });
  assert.deepEqual(toGrammarSchema({ anyOf: [{ type: "string" }, { type: "integer" }, { type: "number" }] }), {
    oneOf: [{ type: "string" }, { type: "integer" }, { type: "number" }],
  });
  assert.deepEqual(toGrammarSchema({ anyOf: [{ type: "string" }], title: "one" }), { type: "string" });
  refused({ type: "frob" }, 'schema.type: unknown type "frob"');
  refused({ type: [] }, "schema.type: type must not be an empty array");
  refused({ anyOf: [] }, "schema.anyOf: anyOf must be a non-empty array");
  refused({ type: "string", anyOf: [{ maxLength: 1 }] }, 'schema.type: "anyOf" combined with "type" is not supported');
});

test("nullable allows null the OpenAPI way", () => {
  assert.deepEqual(toGrammarSchema({ type: "integer", nullable: true }), { type: ["integer", "null"] });
  assert.deepEqual(toGrammarSchema({ enum: ["a", "b"], nullable: true }), { enum: ["a", "b", null] });
  assert.deepEqual(toGrammarSchema({ const: "a", nullable: true }), { enum: ["a", null] });
  assert.deepEqual(toGrammarSchema({ type: "string", maxLength: 2, nullable: true }), { oneOf: [{ type: "string", maxLength: 2 }, { type: "null" }] });
  assert.deepEqual(toGrammarSchema({ type: "string", nullable: false }), { type: "string" });
});

test("const and enum take primitives only, filtered by type", () => {
  assert.deepEqual(toGrammarSchema({ type: "integer", enum: [1, 1.5, "a", 2] }), { enum: [1, 2] });
  assert.deepEqual(toGrammarSchema({ type: "string", enum: ["ab", "abcd"], maxLength: 3 }), { const: "ab" });
  assert.deepEqual(toGrammarSchema({ const: null }), { const: null });
  refused({ enum: [1, { a: 1 }] }, "schema.enum[1]: only string, number, boolean and null values are supported");
  refused({ properties: { x: { const: [1] } } }, "schema.properties.x.const: only string");
  refused({ type: "string", const: 3 }, "schema: no value of const/enum matches the other keywords");
  refused({ enum: [] }, "schema.enum: enum must be a non-empty array");
  refused({ const: "bell\u0007" }, "schema.const: control characters");
  refused({ type: "object", properties: { "a\u0001": { type: "null" } } }, 'schema.properties["a\\u0001"]: control characters');
});

test("objects: properties, required and additionalProperties", () => {
  assert.deepEqual(toGrammarSchema({ type: "object" }), { type: "object", properties: {}, additionalProperties: true });
  assert.deepEqual(toGrammarSchema({ type: "object", properties: { a: { type: "boolean" } }, required: ["a", "b"] }), {
    type: "object", properties: { a: { type: "boolean" }, b: ANY }, additionalProperties: false,
  });
  assert.deepEqual(toGrammarSchema({ required: ["n"], additionalProperties: { type: "integer" }, maxProperties: 3 }), {
    type: "object", properties: { n: { type: "integer" } }, additionalProperties: { type: "integer" }, maxProperties: 3,
  });
  assert.deepEqual(toGrammarSchema({ type: "object", properties: { a: { type: "null" }, gone: false } }), {
    type: "object", properties: { a: { type: "null" } }, additionalProperties: false,
  });
  assert.deepEqual(toGrammarSchema({ properties: { a: { type: "null" } }, minProperties: 2 }), {
    type: "object", properties: { a: { type: "null" } }, additionalProperties: true, minProperties: 2,
  });
  refused({ type: "object", properties: { a: { type: "null" } }, required: ["b"], additionalProperties: false },
    'schema.required: "b" is required but not in properties, and additionalProperties is false');
  refused({ type: "object", properties: { a: true, b: true }, maxProperties: 1 }, "schema.maxProperties: maxProperties is less than the 2 properties");
  refused({ type: "object", properties: { a: true }, minProperties: 2, additionalProperties: false }, "schema.minProperties:");
  refused({ type: "object", properties: { a: false }, required: ["a"] }, 'schema.properties.a: property "a" is required');
  refused({ type: "object", properties: [] }, "schema.properties: properties must be an object");
  const proto = toGrammarSchema(JSON.parse('{"properties": {"__proto__": {"type": "null"}}, "required": ["constructor"]}'));
  assert.deepEqual(Object.keys(proto.properties as object), ["__proto__", "constructor"]);
  assert.equal(Object.getPrototypeOf(proto.properties), Object.prototype);
});

test("arrays: items, prefixItems and draft-07 tuples", () => {
  assert.deepEqual(toGrammarSchema({ type: "array", items: { type: "string" }, minItems: 1, maxItems: 3 }), {
    type: "array", items: { type: "string" }, minItems: 1, maxItems: 3,
  });
  assert.deepEqual(toGrammarSchema({ type: "array", items: [{ type: "string" }, { type: "integer" }], additionalItems: false }), {
    type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], maxItems: 2,
  });
  assert.deepEqual(toGrammarSchema({ type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], maxItems: 1 }), {
    type: "array", prefixItems: [{ type: "string" }], maxItems: 1,
  });
  assert.deepEqual(toGrammarSchema({ type: "array", uniqueItems: true, maxItems: 1 }), { type: "array", maxItems: 1 });
  assert.deepEqual(toGrammarSchema({ type: "array", uniqueItems: false }), { type: "array" });
  refused({ type: "array", minItems: 3, maxItems: 2 }, "schema.minItems: minItems is greater than maxItems");
  refused({ type: "array", prefixItems: [true], items: false, minItems: 2 }, "schema.minItems:");
  refused({ type: "array", maxItems: 501 }, "schema.maxItems: maxItems above 500 is not supported");
  refused({ type: "object", minProperties: 501 }, "schema.minProperties: minProperties above 500 is not supported");
});

test("$ref: local pointers become root $defs; definitions are renamed", () => {
  assert.deepEqual(toGrammarSchema({ definitions: { Pet: { type: "string" } }, type: "object", properties: { p: { $ref: "#/definitions/Pet" } } }), {
    type: "object", properties: { p: { $ref: "#/$defs/Pet" } }, additionalProperties: false, $defs: { Pet: { type: "string" } },
  });
  assert.deepEqual(toGrammarSchema({ allOf: [{ $ref: "#/$defs/A" }], description: "d", $defs: { A: { type: "boolean" } } }), {
    $ref: "#/$defs/A", description: "d", $defs: { A: { type: "boolean" } },
  });
  const tree = toGrammarSchema({ type: "object", properties: { kids: { type: "array", items: { $ref: "#" } } } });
  assert.deepEqual(tree.$defs, { root: { type: "object", properties: { kids: { type: "array", items: { $ref: "#/$defs/root" } } }, additionalProperties: false } });
  const list = toGrammarSchema({ $defs: { L: { anyOf: [{ type: "null" }, { type: "object", properties: { next: { $ref: "#/$defs/L" } } }] } }, $ref: "#/$defs/L" });
  assert.equal(list.$ref, "#/$defs/L");
  refused({ $ref: "https://example.com/s.json" }, 'schema.$ref: only local references ("#/...") are supported');
  refused({ $ref: "#anchor" }, "schema.$ref: only local references");
  refused({ properties: { a: { $ref: "#/$defs/Nope" } } }, 'schema.properties.a.$ref: reference "#/$defs/Nope" points to nothing');
  refused({ $ref: "#/$defs/A", type: "object", $defs: { A: true } }, 'schema.type: "$ref" combined with "type" is not supported');
  refused({ $defs: { A: { type: "object", properties: { self: { $ref: "#/$defs/A" } } } }, $ref: "#/$defs/A" }, "schema.$defs.A: this schema refers to itself with no way to end");
  refused({ $defs: { A: { type: "integer", minimum: 1 } }, items: { $ref: "#/$defs/A" } }, "schema.$defs.A.minimum: keyword");
});

test("allOf is inlined only with exactly one subschema", () => {
  assert.deepEqual(toGrammarSchema({ allOf: [{ type: "string", maxLength: 2 }] }), { type: "string", maxLength: 2 });
  refused({ allOf: [{ type: "string" }, { maxLength: 3 }] }, "schema.allOf: allOf is only supported with exactly one subschema");
});

test("oneOf is kept only when no value can match two branches", () => {
  const pets = { oneOf: [{ $ref: "#/$defs/Cat" }, { $ref: "#/$defs/Dog" }], $defs: {
    Cat: { type: "object", properties: { kind: { const: "cat" }, lives: { type: "integer" } } },
    Dog: { type: "object", properties: { kind: { enum: ["dog"] }, good: { type: "boolean" } } },
  } };
  assert.deepEqual(toGrammarSchema(pets).oneOf, [{ $ref: "#/$defs/Cat" }, { $ref: "#/$defs/Dog" }]);
  assert.deepEqual(toGrammarSchema({ oneOf: [{ type: "string" }, { type: "integer" }] }), { oneOf: [{ type: "string" }, { type: "integer" }] });
  assert.ok(toGrammarSchema({ oneOf: Array.from({ length: 500 }, (_, i) => ({ const: `v${i}`, title: `V${i}` })) }));
  refused({ oneOf: [{ type: "number" }, { type: "integer" }] }, 'schema.oneOf: branches 0 and 1 may match the same value');
  // the first branch always emits "a", which the second (open to extra properties) accepts too
  refused({ oneOf: [{ type: "object", properties: { a: { type: "string" } } }, { type: "object", properties: { b: { type: "string" } } }] }, "schema.oneOf: branches 0 and 1");
  refused({ oneOf: [{ const: 1 }, { enum: [2, 1] }] }, "schema.oneOf: branches 0 and 1");
});

test("every unsupported keyword is a 400 naming its path", () => {
  const keywords = ["pattern", "patternProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "contains", "minContains",
    "maxContains", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$anchor", "frobnicate"];
  for (const keyword of keywords) {
    const err = refused({ type: "object", properties: { age: { [keyword]: 1 } } }, `schema.properties.age.${keyword}: keyword "${keyword}" is not supported`);
    assert.deepEqual(err.details, { keyword, path: `schema.properties.age.${keyword}` });
  }
  refused({ type: "array", uniqueItems: true }, 'schema.uniqueItems: keyword "uniqueItems" is not supported');
  refused({ properties: { a: { $id: "urn:a" } } }, 'schema.properties.a.$id: keyword "$id" is not supported');
});

test("errors carry the request field as param and in the message", () => {
  const err = refused({ type: "integer", minimum: 0 }, "response_format.json_schema.schema.minimum:", "response_format.json_schema.schema");
  assert.equal(err.param, "response_format.json_schema.schema");
  refused(null, "schema: a schema must be a JSON object");
  refused([{}], "schema: a schema must be a JSON object");
  refused(false, "schema: a schema must be a JSON object");
  refused({ items: false, type: "object", properties: { x: 3 } }, "schema.properties.x: a schema must be an object or a boolean");
});

test("hostile schemas are refused fast, without stack overflows", () => {
  const started = Date.now();
  let deep: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < 10_000; i++) deep = { type: "array", items: deep };
  refused(deep, /nested deeper than 32 levels/);
  let deepProps: Record<string, unknown> = {};
  for (let i = 0; i < 10_000; i++) deepProps = { properties: { x: deepProps } };
  refused(deepProps, /nested deeper than 32 levels/);
  const cyclic: Record<string, unknown> = { type: "array" };
  cyclic.items = cyclic;
  refused(cyclic, /nested deeper than 32 levels/);
  refused({ enum: Array.from({ length: 100_000 }, (_, i) => i) }, /more than 2000/);
  refused({ type: "object", properties: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`p${i}`, { type: "null" }])) }, /more than 2000 subschemas/);
  refused({ $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" }, /refers to itself with no way to end/);
  refused({ $ref: "#" }, "schema: this schema refers to itself");
  const branches = Array.from({ length: 600 }, (_, i) => ({ type: "object", properties: { k: { const: i } } }));
  refused({ oneOf: branches }, "schema.oneOf: oneOf is too large to prove that its branches never overlap");
  // alike alternatives multiply llama.cpp's parse stacks through nesting: 2^8 is allowed, 2^9 is not
  const nest = (depth: number): Record<string, unknown> => {
    const $defs: Record<string, unknown> = { d0: { type: "string" } };
    for (let i = 1; i <= depth; i++) {
      const items = { $ref: `#/$defs/d${i - 1}` };
      $defs[`d${i}`] = { anyOf: [{ type: "array", items, maxItems: 2 }, { type: "array", items, minItems: 1 }] };
    }
    return { $defs, $ref: `#/$defs/d${depth}` };
  };
  assert.ok(toGrammarSchema(nest(8)));
  refused(nest(9), "schema: alternatives that start alike (anyOf/oneOf/type arrays of the same kind) are nested too deeply");
  // shared definitions are translated once, so a doubling chain stays small
  const defs: Record<string, unknown> = { d30: { type: "null" } };
  for (let i = 0; i < 30; i++) defs[`d${i}`] = { type: "array", prefixItems: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
  assert.equal(Object.keys(toGrammarSchema({ $defs: defs, $ref: "#/$defs/d0" }).$defs as object).length, 31);
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
});

test("toolCallSchema forces one call of a named tool or of any tool", () => {
  const tools = [
    { name: "get_weather", parameters: { type: "object", properties: { city: { $ref: "#/$defs/City" } }, required: ["city"], $defs: { City: { type: "string" } } } },
    { name: "now" },
  ];
  const weather = {
    type: "object", additionalProperties: false, properties: {
      name: { const: "get_weather" },
      arguments: { type: "object", properties: { city: { $ref: "#/$defs/t0_City" } }, additionalProperties: false },
    },
  };
  const now = { type: "object", additionalProperties: false, properties: {
    name: { const: "now" }, arguments: { type: "object", properties: {}, additionalProperties: false },
  } };
  assert.deepEqual(toolCallSchema(tools, { name: "get_weather" }), { ...weather, $defs: { t0_City: { type: "string" } } });
  assert.deepEqual(toolCallSchema(tools, { name: "now" }), now);
  assert.deepEqual(toolCallSchema(tools, "required"), { oneOf: [weather, now], $defs: { t0_City: { type: "string" } } });
  // a result is returned as is, so the tool-call schema can go through the json_schema path unchanged
  const loose = toolCallSchema([{ name: "f", parameters: { properties: { n: { anyOf: [{ type: "number" }, { type: "integer" }] } } } }], "required");
  assert.equal(toGrammarSchema(loose), loose);
  const once = toGrammarSchema({ anyOf: [{ type: "number" }, { type: "integer" }] });
  assert.equal(toGrammarSchema(once), once);
  assert.throws(() => toolCallSchema(tools, { name: "nope" }), (err: unknown) =>
    err instanceof InfernoError && err.status === 400 && err.param === "tool_choice" && /unknown tool "nope"/.test(err.message));
  assert.throws(() => toolCallSchema([], "required"), (err: unknown) => err instanceof InfernoError && err.param === "tool_choice");
  assert.throws(() => toolCallSchema([{ name: "f", parameters: { type: "object", properties: { n: { type: "number", maximum: 3 } } } }], "required"),
    (err: unknown) => err instanceof InfernoError && err.param === "tools[0].function.parameters" &&
      err.message.startsWith("tools[0].function.parameters.properties.n.maximum:"));
});
