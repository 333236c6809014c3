// Needs no downloaded model: the native generation loop (patches/node-llama-cpp-generate-tokens.patch,
// src/runtimes/llama/native-generation.ts) on the generated tiny llama, through node-llama-cpp's real context:
// a lone stream runs on it with the tokens node-llama-cpp gives (from its first token when the sequence holds all of
// its prompt but the last token); a second stream stops it for its prompt, then
// both run in one loop (one decode a step) with the tokens each would get alone; streams that come at different
// times all end up in one loop; a stream that cannot run natively keeps every stream on node-llama-cpp's batches;
// a reader that stops reading holds only its own sequence back; and what a loop decoded past the end is accounted
// for so the next request on the sequence reuses its prefix correctly.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { eraseFrom } from "../../src/runtimes/llama/generation-loop.js";
import { enableNativeLoops, NATIVE_WINDOW, TokenSource } from "../../src/runtimes/llama/native-generation.js";
import { loopEnded, recordNativeLoops, type RecordedLoop } from "../helpers/native-loops.js";
import { eachAlone, promptTokens, tinyModel } from "../helpers/tiny-llama.js";

/** A context of `sequences` with native loops on, and a record of every loop run on it (skips without the patched addon). */
async function nativeContext(t: TestContext, model: LlamaModel, sequences: number, intervalMs = 0): Promise<{ context: LlamaContext; loops: RecordedLoop[] } | undefined> {
  const context = await model.createContext({ contextSize: 256, sequences, threads: 1 });
  t.after(() => context.dispose());
  const loops = recordNativeLoops(context);
  if (!loops) {
    // The patched addon (scripts/build-llama-addon.sh) has it; CI builds it and must not skip.
    assert.notEqual(process.env.CI, "true", "the addon has no generateTokens: patches/node-llama-cpp-generate-tokens.patch is not built in");
    t.skip("the addon has no generateTokens (npm run build:llama-addon)");
    return undefined;
  }
  assert.ok(enableNativeLoops(context, intervalMs));
  return { context, loops };
}

/**
 * Two streams' setting: the tiny model, two prompts, each prompt's first `tokens` greedy tokens alone, and a
 * native-loop context with a sequence for each (undefined when skipped).
 */
async function twoStreams(t: TestContext, tokens: number) {
  const model = await tinyModel(t, 5, 1);
  const prompts = ["Once upon a time", "The cat"];
  const expected = await eachAlone(model, prompts, 256, tokens);
  const setup = await nativeContext(t, model, 2);
  if (!setup) return undefined;
  return { model, prompts, expected, setup, seqA: setup.context.getSequence(), seqB: setup.context.getSequence() };
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

  // The next request with the same prompt keeps the prompt, drops what the loop decoded past it, and gets the same
  // tokens. Its one token left to evaluate (the prompt's last) is the start of a native loop: its first token comes
  // from there too, not from node-llama-cpp's batch.
  const keep = Math.min(sequence.compareContextTokens(prompted).firstDifferentIndex, prompted.length - 1);
  assert.equal(keep, prompted.length - 1);
  await eraseFrom(sequence, keep);
  const again = greedy(model, sequence, prompt, keep);
  const firstAgain = await take(again, 1);
  assert.ok(again.native, "a prompt the sequence holds but its last token: the first token comes from the native loop");
  assert.deepEqual([...firstAgain, ...(await take(again, 39))], expected);
  await again.return();
  assert.equal(setup.loops.length, 2, "one loop for the whole second stream");
  const decodedAgain = setup.loops[1]!.decoded[0]!;
  // It decoded the prompt's last token, then what it sampled but the last.
  assert.ok(decodedAgain >= 40 && decodedAgain <= 40 + NATIVE_WINDOW + 1, `${decodedAgain} decoded`);
  assert.equal(sequence.nextTokenIndex, keep + decodedAgain);
  assert.deepEqual(sequence.contextTokens.slice(0, prompted.length + 39), [...prompted, ...expected!.slice(0, 39)]);
});

test("with a stream interval, tokens after the first reach JavaScript in groups (at most half the window), and they are the same tokens", async (t) => {
  const model = await tinyModel(t, 9, 1);
  const prompt = "Once upon a time";
  const [expected] = await eachAlone(model, [prompt], 256, 60);
  const deliveries: number[] = [];
  for (const intervalMs of [0, 60_000]) {
    const setup = await nativeContext(t, model, 1, intervalMs);
    if (!setup) return;
    const source = greedy(model, setup.context.getSequence(), prompt);
    const started = performance.now();
    const tokens = await take(source, 60);
    const elapsed = performance.now() - started;
    assert.deepEqual(tokens, expected, `interval ${intervalMs} ms: the tokens of the stream alone`);
    assert.ok(source.native);
    await source.return();
    const [loop] = setup.loops;
    assert.ok(loop && (await loopEnded(loop)));
    assert.equal(loop.sampled.length, 1);
    t.diagnostic(`interval ${intervalMs} ms: ${loop.sampled[0]} tokens sampled, delivered in ${loop.deliveries[0]} goes, ${elapsed.toFixed(0)} ms`);
    deliveries.push(loop.deliveries[0]!);
    if (intervalMs > 0) {
      // The first token at once, then half the window at a time (the interval never passes here), the rest at the end.
      const most = 1 + Math.ceil(loop.sampled[0]! / (NATIVE_WINDOW / 2)) + 1;
      assert.ok(loop.deliveries[0]! <= most, `${loop.deliveries[0]} deliveries of ${loop.sampled[0]} tokens, at most ${most}`);
      assert.ok(elapsed < 10_000, "held tokens go out when half the window is held, not after the interval");
    }
  }
  assert.ok(deliveries[0]! > deliveries[1]!, `each token on its own without an interval: ${deliveries.join(" against ")}`);
});

test("a second stream stops the loop for its prompt; then both run in one loop, each with its own tokens", async (t) => {
  const two = await twoStreams(t, 60);
  if (!two) return;
  const { model, prompts, expected, setup, seqA, seqB } = two;

  const a = greedy(model, seqA, prompts[0]!);
  const gotA = await take(a, 10);
  assert.ok(a.native);
  const b = greedy(model, seqB, prompts[1]!);
  const [moreA, gotB] = await Promise.all([take(a, 30), take(b, 40)]);
  gotA.push(...moreA);
  assert.notEqual(setup.loops[0]!.decodes, undefined, "the first stream's loop ended when the second came");
  const shared = setup.loops.find((l) => l.sampled.length === 2);
  assert.ok(shared, `a loop carried both streams: ${JSON.stringify(setup.loops)}`);
  assert.ok(shared.sampled.every((n) => n >= 20), `both streams' tokens came from it: ${JSON.stringify(shared.sampled)}`);
  await b.return();
  assert.ok(shared.decoded.some((d) => d !== undefined), "the second stream left the loop when it returned");
  // The first stream goes on in the same loop.
  const loopsBefore = setup.loops.length;
  gotA.push(...(await take(a, 20)));
  assert.equal(setup.loops.length, loopsBefore, "the first stream stayed in the loop the second one left");
  await a.return();
  assert.deepEqual(gotA, expected[0]!.slice(0, 60));
  assert.deepEqual(gotB, expected[1]!.slice(0, 40));
  assert.ok(await loopEnded(shared), "with no sequence left, the loop ended");
  t.diagnostic(`the shared loop: ${shared.decodes} decodes, tokens sampled ${JSON.stringify(shared.sampled)}`);
});

test("streams that start at different times all run in one loop, one decode a step", async (t) => {
  const model = await tinyModel(t, 5, 1);
  const prompts = ["Once upon a time", "The cat", "A dog ran", "She said"];
  const expected = await eachAlone(model, prompts, 256, 100);
  const setup = await nativeContext(t, model, 4);
  if (!setup) return;
  const sources = prompts.map((prompt) => greedy(model, setup.context.getSequence(), prompt));
  // Each stream starts once the one before it has taken a few tokens: every start stops the loop for a prompt.
  const runs: Array<Promise<Token[]>> = [];
  for (const source of sources) {
    const first = await take(source, 5);
    runs.push(take(source, 95).then((rest) => [...first, ...rest]));
  }
  const got = await Promise.all(runs);
  await Promise.all(sources.map((s) => s.return()));
  assert.deepEqual(got, expected);
  const last = setup.loops.at(-1)!;
  assert.ok(await loopEnded(last), "with no sequence left, the loop ended");
  t.diagnostic(`loops: ${JSON.stringify(setup.loops.map((l) => ({ sampled: l.sampled, decodes: l.decodes })))}`);
  assert.equal(last.sampled.length, 4, "the last loop carried all four streams");
  // Every step decoded every stream still in it: about as many decodes as the longest stream's tokens (streams
  // taking turns in pairs would need twice as many). A reader a window behind sits out a step now and then.
  const longest = Math.max(...last.sampled);
  assert.ok(last.decodes! <= longest * 1.2, `${last.decodes} decodes for at most ${longest} tokens a stream`);
});

test("a stream that cannot run natively keeps every stream of its context on node-llama-cpp's batches", async (t) => {
  const two = await twoStreams(t, 30);
  if (!two) return;
  const { model, prompts, expected, setup, seqA, seqB } = two;
  const a = greedy(model, seqA, prompts[0]!);
  const b = greedy(model, seqB, prompts[1]!, 0, false);
  const [gotA, gotB] = await Promise.all([take(a, 30), take(b, 30)]);
  await Promise.all([a.return(), b.return()]);
  assert.deepEqual(gotA, expected[0]);
  assert.deepEqual(gotB, expected[1]);
  assert.equal(setup.loops.length, 0, `no loop while both ran: ${JSON.stringify(setup.loops)}`);
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
