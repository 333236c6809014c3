// Needs no downloaded model: the native generation loop (patches/node-llama-cpp-generate-tokens.patch,
// src/runtimes/llama/native-generation.ts) on the generated tiny llama, through node-llama-cpp's real context:
// a lone stream runs on it with the tokens node-llama-cpp gives, a second stream sends both back to
// node-llama-cpp's batches, a reader that stops reading holds it back, and what it decoded past the end is
// accounted for so the next request on the sequence reuses its prefix correctly.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { eraseFrom } from "../../src/runtimes/llama/generation-loop.js";
import { wrapNativeContext } from "../../src/runtimes/llama/native-context.js";
import {
  enableNativeLoops, LOOP_END, NATIVE_WINDOW, SEQUENCE_END, TOKEN, TokenSource, type GenerateTokens,
} from "../../src/runtimes/llama/native-generation.js";
import { eachAlone, promptTokens, tinyModel } from "../helpers/tiny-llama.js";

interface Loop {
  /** Per sequence of the loop (in its order): tokens sampled, and tokens decoded once it ended. */
  sampled: number[];
  decoded: Array<number | undefined>;
  ended: boolean;
}

/** A context of `sequences` with native loops on, and a record of every loop run on it (skips without the patched addon). */
async function nativeContext(t: TestContext, model: LlamaModel, sequences: number): Promise<{ context: LlamaContext; loops: Loop[] } | undefined> {
  const context = await model.createContext({ contextSize: 256, sequences, threads: 1 });
  t.after(() => context.dispose());
  const native = (context as unknown as { _ctx: { generateTokens?: GenerateTokens } })._ctx;
  if (typeof native.generateTokens !== "function") {
    // The patched addon (scripts/build-llama-addon.sh) has it; CI builds it and must not skip.
    assert.notEqual(process.env.CI, "true", "the addon has no generateTokens: patches/node-llama-cpp-generate-tokens.patch is not built in");
    t.skip("the addon has no generateTokens (npm run build:llama-addon)");
    return undefined;
  }
  const generateTokens = native.generateTokens.bind(native);
  const loops: Loop[] = [];
  wrapNativeContext(context, {
    generateTokens: ((ids, positions, tokens, samplers, maxTokens, one, many, window, onEvent) => {
      const loop: Loop = { sampled: ids.map(() => 0), decoded: ids.map(() => undefined), ended: false };
      loops.push(loop);
      return generateTokens(ids, positions, tokens, samplers, maxTokens, one, many, window, (kind, index, value, error) => {
        if (kind === TOKEN) loop.sampled[index]!++;
        if (kind === SEQUENCE_END) loop.decoded[index] = value;
        if (kind === LOOP_END) loop.ended = true;
        onEvent(kind, index, value, error);
      });
    }) satisfies GenerateTokens,
  });
  assert.ok(enableNativeLoops(context));
  return { context, loops };
}

/** Greedy tokens of `prompt` on `sequence`, as the generation loop asks for them (native when it may). */
function greedy(model: LlamaModel, sequence: LlamaContextSequence, prompt: string, keep = 0, plain = true): TokenSource {
  return new TokenSource({
    model,
    sequence,
    tokens: promptTokens(model, prompt).slice(keep),
    metadata: {},
    options: { temperature: 0 },
    native: plain ? { temperature: 0 } : undefined,
    budget: 1000,
    busy: () => false,
  });
}

async function take(source: TokenSource, count: number): Promise<Token[]> {
  const out: Token[] = [];
  while (out.length < count) {
    const step = await source.next();
    if (step.done) break;
    out.push(step.value.token);
  }
  return out;
}

test("a lone stream runs on the native loop with node-llama-cpp's tokens, and the sequence holds what it decoded", async (t) => {
  const model = await tinyModel(t, 9, 1);
  const prompt = "Once upon a time";
  const [expected] = await eachAlone(model, [prompt], 256, 40);
  const setup = await nativeContext(t, model, 2);
  if (!setup) return;
  const sequence = setup.context.getSequence();

  const first = greedy(model, sequence, prompt);
  const tokens = await take(first, 40);
  assert.equal(tokens.length, 40, "the tiny model runs 40 tokens without an end-of-generation token");
  assert.deepEqual(tokens, expected);
  assert.ok(first.native, "after its first token, a lone stream is on the native loop");
  await first.return();
  assert.equal(setup.loops.length, 1);
  assert.equal(setup.loops[0]!.sampled.length, 1, "a loop of one sequence");
  const decoded = setup.loops[0]!.decoded[0]!;
  t.diagnostic(`the loop sampled ${setup.loops[0]!.sampled[0]} tokens and decoded ${decoded}`);
  // The first token came from the prompt's batch; the loop decoded it and what it sampled but the last, a few past the 40th at most.
  const prompted = promptTokens(model, prompt);
  assert.ok(decoded >= 39 && decoded <= 39 + NATIVE_WINDOW + 1, `${decoded} decoded`);
  assert.equal(sequence.nextTokenIndex, prompted.length + decoded);
  assert.equal(sequence.contextTokens.length, sequence.nextTokenIndex);
  assert.deepEqual(sequence.contextTokens.slice(0, prompted.length + 39), [...prompted, ...tokens.slice(0, 39)], "node-llama-cpp's record of the sequence");

  // The next request with the same prompt keeps the prompt, drops what the loop decoded past it, and gets the same tokens.
  const keep = Math.min(sequence.compareContextTokens(prompted).firstDifferentIndex, prompted.length - 1);
  assert.equal(keep, prompted.length - 1);
  await eraseFrom(sequence, keep);
  const again = greedy(model, sequence, prompt, keep);
  assert.deepEqual(await take(again, 40), expected);
  await again.return();
});

test("a second stream stops the loop; after its prompt both run in one loop, and each gets its own tokens", async (t) => {
  const model = await tinyModel(t, 5, 1);
  const prompts = ["Once upon a time", "The cat"];
  const expected = await eachAlone(model, prompts, 256, 60);
  const setup = await nativeContext(t, model, 2);
  if (!setup) return;
  const [seqA, seqB] = [setup.context.getSequence(), setup.context.getSequence()];

  const a = greedy(model, seqA, prompts[0]!);
  const gotA = await take(a, 10);
  assert.ok(a.native);
  const b = greedy(model, seqB, prompts[1]!);
  const [moreA, gotB] = await Promise.all([take(a, 30), take(b, 40)]);
  gotA.push(...moreA);
  assert.ok(setup.loops[0]!.ended, "the first stream's loop ended when the second came");
  const shared = setup.loops.find((l) => l.sampled.length === 2);
  assert.ok(shared, `a loop carried both streams: ${JSON.stringify(setup.loops)}`);
  assert.ok(shared.sampled.every((n) => n >= 20), `both streams' tokens came from it: ${JSON.stringify(shared.sampled)}`);
  await b.return();
  assert.notEqual(shared.decoded[1], undefined, "the second stream left the loop when it returned");
  // The first stream goes on in the same loop.
  gotA.push(...(await take(a, 20)));
  await a.return();
  assert.deepEqual(gotA, expected[0]!.slice(0, 60));
  assert.deepEqual(gotB, expected[1]!.slice(0, 40));
  for (let i = 0; i < 100 && !shared.ended; i++) await sleep(5);
  assert.ok(shared.ended, "with no sequence left, the loop ended");
});

test("a stream that cannot run natively keeps every stream of its context on node-llama-cpp's batches", async (t) => {
  const model = await tinyModel(t, 5, 1);
  const prompts = ["Once upon a time", "The cat"];
  const expected = await eachAlone(model, prompts, 256, 30);
  const setup = await nativeContext(t, model, 2);
  if (!setup) return;
  const [seqA, seqB] = [setup.context.getSequence(), setup.context.getSequence()];
  const a = greedy(model, seqA, prompts[0]!);
  const b = greedy(model, seqB, prompts[1]!, 0, false);
  const [gotA, gotB] = await Promise.all([take(a, 30), take(b, 30)]);
  await Promise.all([a.return(), b.return()]);
  assert.deepEqual(gotA, expected[0]);
  assert.deepEqual(gotB, expected[1]);
  assert.ok(setup.loops.every((l) => l.sampled.length === 1 && l.sampled[0]! <= 2), `no loop while both ran: ${JSON.stringify(setup.loops)}`);
});

test("a reader that stops taking tokens holds the loop back, and return() stops it", async (t) => {
  const model = await tinyModel(t, 11, 1);
  const setup = await nativeContext(t, model, 1);
  if (!setup) return;
  const sequence = setup.context.getSequence();
  const source = greedy(model, sequence, "Once upon a time");
  await take(source, 2);
  await sleep(300);
  const loop = setup.loops[0]!;
  assert.ok(loop.sampled[0]! <= NATIVE_WINDOW + 1, `${loop.sampled[0]} tokens sampled ahead of a reader that took 1 from the loop`);
  await source.return();
  assert.notEqual(loop.decoded[0], undefined, "return() waited for the sequence to leave the loop");
  assert.equal(sequence.nextTokenIndex, promptTokens(model, "Once upon a time").length + loop.decoded[0]!);
});
