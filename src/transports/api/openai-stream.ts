// OpenAI's streamed answer, shared by /v1/chat/completions and /v1/completions: a chunk per piece of any
// choice as it comes, a usage chunk when the client asked for one (stream_options.include_usage) and every
// choice ended, then [DONE].
import { mergeAsync } from "../../core/stream-utils.js";
import { RawEvent } from "../../http/sse.js";

export interface OpenaiStream {
  id: string;
  /** "chat.completion.chunk" or "text_completion". */
  object: string;
  created: number;
  model: string;
  includeUsage: boolean;
}

export async function* openaiStreamEvents(s: OpenaiStream, choices: Array<AsyncIterable<unknown>>, usage: () => unknown): AsyncGenerator<unknown> {
  const envelope = (pieces: unknown[]) => ({
    id: s.id, object: s.object, created: s.created, model: s.model, system_fingerprint: null, choices: pieces,
    ...(s.includeUsage ? { usage: null } : {}),
  });
  for await (const piece of mergeAsync(choices)) yield envelope([piece]);
  if (s.includeUsage) {
    const u = usage();
    if (u !== undefined) yield { ...envelope([]), usage: u };
  }
  yield new RawEvent("[DONE]");
}
