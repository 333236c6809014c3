// Pure logic: stop strings found in streamed text, however the text is split into pieces.
import assert from "node:assert/strict";
import { test } from "node:test";
import { StopMatcher } from "../../src/core/stop-matcher.js";
import { prng } from "../fixtures/prng.js";

/** Streams `pieces` through a matcher the way the generation loop does, returning what was emitted. */
function stream(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const matcher = new StopMatcher(stops);
  let text = "";
  for (const piece of pieces) {
    const out = matcher.push(piece);
    text += out.emit;
    if (out.stopped) return { text, stopped: true };
  }
  return { text: text + matcher.flush(), stopped: false };
}

/** The whole text cut at the earliest stop string. */
function reference(stops: string[], whole: string): { text: string; stopped: boolean } {
  const hits = stops.filter((s) => s.length > 0).map((s) => whole.indexOf(s)).filter((i) => i !== -1);
  return hits.length > 0 ? { text: whole.slice(0, Math.min(...hits)), stopped: true } : { text: whole, stopped: false };
}

test("holds back only a possible stop string and cuts at the earliest one", () => {
  const matcher = new StopMatcher(["END", "\n\n"]);
  assert.deepEqual(matcher.push("Once E"), { emit: "Once ", stopped: false });
  assert.deepEqual(matcher.push("N"), { emit: "", stopped: false });
  assert.deepEqual(matcher.push("Dless"), { emit: "", stopped: true });
  assert.deepEqual(stream(["ab"], ["xa", "a", "b", "c"]), { text: "xa", stopped: true });
  assert.deepEqual(stream([], ["a", "b"]), { text: "ab", stopped: false });
  assert.deepEqual(stream(["\uD83D\uDE00!"], ["hi \uD83D\uDE00", "?"]), { text: "hi \uD83D\uDE00?", stopped: false });
});

test("matches the whole-text reference on random streams and stops", () => {
  const rand = prng(7);
  const alphabet = "ab \n.";
  const word = (max: number) => Array.from({ length: 1 + Math.floor(rand() * max) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
  for (let i = 0; i < 2000; i++) {
    const stops = Array.from({ length: Math.floor(rand() * 4) }, () => word(6));
    const pieces = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => (rand() < 0.1 ? "" : word(4)));
    assert.deepEqual(stream(stops, pieces), reference(stops, pieces.join("")), JSON.stringify({ stops, pieces }));
  }
});

test("a long stream costs the same per piece at its end as at its start", () => {
  const matcher = new StopMatcher(["The End.", "x".repeat(64)]);
  const time = (n: number) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) matcher.push(" and then");
    return performance.now() - start;
  };
  time(20_000); // warm-up
  const early = time(20_000);
  for (let i = 0; i < 200_000; i++) matcher.push(" and then");
  const late = time(20_000);
  assert.ok(late < early * 5 + 5, `20k pieces took ${early.toFixed(1)} ms early, ${late.toFixed(1)} ms after 240k`);
});
