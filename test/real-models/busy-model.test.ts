// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI.
// Regression: a request that lands on a free sequence of a busy model got its first token only once the
// model's other streams had all finished, because node-llama-cpp's batch loop kept the context lock that
// the new request needed to erase the sequence's old tokens.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { realModel } from "../helpers/paths.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");

let srv: TestServer;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories260K: stories.path }, config: { contextSize: 2048, parallel: 4 } });
});
after(() => srv?.cleanup());

const body = (maxTokens: number) => ({ model: "stories260K", prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0 });

/** Streams a long generation, calling `onTokens` with the count so far; resolves with the time it ended. */
async function longStream(onTokens: (n: number) => void): Promise<number> {
  const res = await fetch(`${srv.url}/inference/stream`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(800)) });
  let tokens = 0;
  const decoder = new TextDecoder();
  for await (const bytes of res.body!) {
    tokens += decoder.decode(bytes as Uint8Array, { stream: true }).split('data: {"token"').length - 1;
    onTokens(tokens);
  }
  return performance.now();
}

test("a new request on a busy model starts while the other streams are still running", { skip: stories.skip }, async () => {
  // Every sequence holds an earlier generation, so each new request has old tokens to erase.
  await Promise.all(Array.from({ length: 4 }, () => postJson(`${srv.url}/inference`, body(20))));
  const counts = [0, 0, 0];
  let flowing: () => void = () => {};
  const allFlowing = new Promise<void>((resolve) => (flowing = resolve));
  const streams = counts.map((_, i) =>
    longStream((n) => {
      counts[i] = n;
      if (counts.every((c) => c >= 10)) flowing();
    }),
  );
  await allFlowing;
  const answered = await postJson(`${srv.url}/inference`, body(1));
  const at = performance.now();
  assert.equal(answered.status, 200);
  const ended = await Promise.all(streams);
  assert.ok(ended.every((t) => t > at), `the new request answered after a long stream ended (counts then: ${counts.join(", ")})`);
});
