import { randomBytes } from "node:crypto";
import type { ToolCall, ToolCallSyntax } from "./chat.js";

export const newToolCallId = () => `call_${randomBytes(12).toString("base64url")}`;

/** A forced call generated under the tool-call grammar: `{"name": ..., "arguments": {...}}`. */
export function parseForcedCall(text: string): ToolCall | undefined {
  try {
    const value = JSON.parse(text) as { name?: unknown; arguments?: unknown };
    if (typeof value.name !== "string") return undefined;
    return { id: newToolCallId(), name: value.name, arguments: JSON.stringify(value.arguments ?? {}) };
  } catch {
    return undefined;
  }
}

/**
 * Splits free text (tool_choice "auto") into content and tool calls: calls written in the template's
 * own syntax (`||call: name({...})` and the like), or the whole reply being one `{"name","arguments"}`
 * object naming a known tool. Calls whose arguments are not JSON stay content.
 */
export function parseAutoCalls(text: string, syntax: ToolCallSyntax | undefined, toolNames: readonly string[]): { content: string; calls: ToolCall[] } {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const call = parseForcedCall(trimmed);
    if (call && toolNames.includes(call.name)) return { content: "", calls: [call] };
  }
  if (!syntax) return { content: text, calls: [] };
  const calls: ToolCall[] = [];
  let content = "";
  let rest = text;
  for (;;) {
    const at = firstPrefix(rest, syntax.prefixes);
    if (!at) return { content: content + rest, calls };
    content += rest.slice(0, at.index);
    const after = rest.slice(at.index + at.prefix.length);
    const open = syntax.paramsPrefix ? after.indexOf(syntax.paramsPrefix) : -1;
    const name = (open === -1 ? "" : after.slice(0, open)).trim();
    const body = open === -1 ? "" : after.slice(open + syntax.paramsPrefix.length);
    const parsed = toolNames.includes(name) ? leadingJson(body) : undefined;
    if (!parsed) return { content: content + rest.slice(at.index), calls };
    calls.push({ id: newToolCallId(), name, arguments: JSON.stringify(parsed.value) });
    rest = body.slice(parsed.length);
    if (syntax.suffix && rest.startsWith(syntax.suffix)) rest = rest.slice(syntax.suffix.length);
    rest = rest.replace(/^\s+/, "");
  }
}

function firstPrefix(text: string, prefixes: string[]): { index: number; prefix: string } | undefined {
  let best: { index: number; prefix: string } | undefined;
  for (const prefix of prefixes) {
    const index = text.indexOf(prefix);
    if (index !== -1 && (!best || index < best.index || (index === best.index && prefix.length > best.prefix.length))) best = { index, prefix };
  }
  return best;
}

/** The JSON value at the start of text (balanced braces/brackets, strings respected), if it parses. */
function leadingJson(text: string): { value: unknown; length: number } | undefined {
  const start = text.search(/\S/);
  if (start === -1 || (text[start] !== "{" && text[start] !== "[")) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) {
        try {
          return { value: JSON.parse(text.slice(start, i + 1)), length: i + 1 };
        } catch {
          return undefined;
        }
      }
    }
  }
  return undefined;
}

/**
 * For streamed `auto` tool use: passes content through but holds back anything that may begin a tool
 * call (a prefix of the call syntax, or a reply opening with "{"), so a call is never streamed as text.
 */
export class ToolCallHoldback {
  private held = "";
  private capturing = false;
  private seenText = false;

  constructor(private readonly syntax: ToolCallSyntax | undefined) {}

  /** Content that is safe to stream now. */
  push(piece: string): string {
    if (this.capturing) {
      this.held += piece;
      return "";
    }
    const text = this.held + piece;
    if (!this.seenText && text.trim() === "") {
      this.held = text;
      return "";
    }
    if (!this.seenText && text.trimStart().startsWith("{")) {
      this.capturing = true;
      this.held = text;
      return "";
    }
    this.seenText = true;
    const prefixes = this.syntax?.prefixes ?? [];
    const at = firstPrefix(text, prefixes);
    if (at) {
      this.capturing = true;
      this.held = text.slice(at.index);
      return text.slice(0, at.index);
    }
    let keep = 0;
    for (const p of prefixes) {
      for (let len = Math.min(p.length - 1, text.length); len > keep; len--) {
        if (p.startsWith(text.slice(text.length - len))) {
          keep = len;
          break;
        }
      }
    }
    this.held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** What was held back, to be parsed for calls at the end. */
  rest(): string {
    return this.held;
  }
}
