import { InfernoError } from "../../errors/catalogue.js";

/** The fields a `/api/generate` template may use. */
export interface TemplateValues {
  System: string;
  Prompt: string;
  Suffix: string;
}

type Field = keyof TemplateValues | "Response";
type Node = { kind: "text"; text: string } | { kind: "field"; name: Field } | { kind: "if"; name: Field; then: Node[]; otherwise: Node[] };

const FIELDS: readonly Field[] = ["System", "Prompt", "Response", "Suffix"];
const SUPPORTED =
  "supported: {{ .System }}, {{ .Prompt }}, {{ .Response }}, {{ .Suffix }}, {{ if .Field }}...{{ else }}...{{ end }}, {{/* comments */}} and the trim markers {{- and -}}";
// Go's trim markers remove these characters only (ASCII space, tab, CR, LF).
const SPACE = /[ \t\r\n]/;

const bad = (message: string) =>
  new InfernoError("INVALID_REQUEST", `template: ${message} (${SUPPORTED})`, undefined, { param: "template" });

/**
 * Renders the small subset of Go's text/template that generate prompts use. As Ollama does, the
 * template is cut after `{{ .Response }}` (the reply is generated from there), so whatever follows it
 * never reaches the prompt. Anything outside the subset is refused rather than rendered wrongly.
 */
export function renderTemplate(source: string, values: TemplateValues): string {
  return render(parse(source), values);
}

type Token = { kind: "text"; text: string } | { kind: "action"; body: string };

function lex(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open === -1) {
      out.push({ kind: "text", text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src[start] === "-" && SPACE.test(src[start + 1] ?? "")) {
      while (text.length > 0 && SPACE.test(text[text.length - 1]!)) text = text.slice(0, -1);
      start += 1;
    }
    if (text) out.push({ kind: "text", text });
    const close = src.indexOf("}}", start);
    if (close === -1) throw bad(`unclosed action at offset ${open}`);
    let body = src.slice(start, close);
    const trimAfter = body.length >= 2 && body.endsWith("-") && SPACE.test(body[body.length - 2]!);
    if (trimAfter) body = body.slice(0, -1);
    out.push({ kind: "action", body: body.trim() });
    i = close + 2;
    if (trimAfter) while (i < src.length && SPACE.test(src[i]!)) i++;
  }
  return out;
}

function fieldOf(expr: string, action: string): Field {
  const name = /^\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(expr)?.[1];
  if (name === undefined) throw bad(`unsupported action {{ ${action} }}`);
  if (!FIELDS.includes(name as Field)) throw bad(`unknown field .${name}`);
  return name as Field;
}

function parse(source: string): Node[] {
  const root: Node[] = [];
  // Open blocks: where nodes go now, and the if being filled (null for the root).
  const stack: Array<{ nodes: Node[]; node: Extract<Node, { kind: "if" }> | null; inElse: boolean }> = [
    { nodes: root, node: null, inElse: false },
  ];
  // Everything after {{ .Response }} in document order is dropped, but still parsed for structure.
  let cut = false;
  const sink = (): Node[] => (cut ? [] : stack[stack.length - 1]!.nodes);
  for (const token of lex(source)) {
    if (token.kind === "text") {
      sink().push(token);
      continue;
    }
    const body = token.body;
    if (body.startsWith("/*")) {
      if (!body.endsWith("*/")) throw bad("unclosed comment");
      continue;
    }
    const words = body.split(/\s+/);
    if (words[0] === "if" && words.length === 2) {
      const node = { kind: "if" as const, name: fieldOf(words[1]!, body), then: [], otherwise: [] };
      sink().push(node);
      stack.push({ nodes: node.then, node, inElse: false });
    } else if (body === "else") {
      const top = stack[stack.length - 1]!;
      if (!top.node || top.inElse) throw bad("{{ else }} outside an {{ if }}");
      top.inElse = true;
      top.nodes = top.node.otherwise;
    } else if (body === "end") {
      if (stack.length === 1) throw bad("{{ end }} without an {{ if }}");
      stack.pop();
    } else {
      const name = fieldOf(body, body);
      sink().push({ kind: "field", name });
      if (name === "Response") cut = true;
    }
  }
  if (stack.length > 1) throw bad("{{ if }} without {{ end }}");
  return root;
}

function render(nodes: Node[], values: TemplateValues): string {
  const valueOf = (name: Field) => (name === "Response" ? "" : values[name]);
  let out = "";
  for (const node of nodes) {
    if (node.kind === "text") out += node.text;
    else if (node.kind === "field") out += valueOf(node.name);
    else out += render(valueOf(node.name) ? node.then : node.otherwise, values);
  }
  return out;
}
