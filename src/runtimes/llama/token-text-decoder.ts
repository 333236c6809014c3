import type { LlamaModel, Token } from "node-llama-cpp";

const REPLACEMENT = "\uFFFD";
/** A UTF-8 character spans at most 4 byte-fallback tokens; past that a replacement char is real output. */
const MAX_PENDING = 4;
/** Tokens of context kept for the detokenizer's leading-space heuristics. */
const CONTEXT_TOKENS = 4;

/**
 * Turns generated tokens into text one token at a time, never splitting a UTF-8 character: tokens
 * whose text ends in a partial character are held until the character completes. Its two small
 * arrays are reused for the whole stream (node-llama-cpp copies what it is given).
 */
export class TokenTextDecoder {
  private readonly pending: Token[] = [];
  private readonly context: Token[];

  constructor(private readonly model: LlamaModel, precedingTokens: readonly Token[]) {
    this.context = precedingTokens.slice(-CONTEXT_TOKENS);
  }

  /** Text ready after this token ("" while a character is incomplete). */
  push(token: Token): string {
    this.pending.push(token);
    const text = this.model.detokenize(this.pending, false, this.context);
    if (text.endsWith(REPLACEMENT) && this.pending.length < MAX_PENDING) return "";
    for (const t of this.pending) this.context.push(t);
    if (this.context.length > CONTEXT_TOKENS) this.context.splice(0, this.context.length - CONTEXT_TOKENS);
    this.pending.length = 0;
    return text;
  }

  flush(): string {
    if (this.pending.length === 0) return "";
    const text = this.model.detokenize(this.pending, false, this.context);
    this.pending.length = 0;
    return text;
  }
}
