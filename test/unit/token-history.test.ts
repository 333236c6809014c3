// Needs no model: the token ring behind GET /metrics/summary, on a fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BUCKETS, BUCKET_SECONDS, TokenHistory } from "../../src/observability/metrics-summary.js";

test("counts land in their 10-second bucket, oldest first, the current bucket last", () => {
  let now = 1_000_000_000_000; // a multiple of 10 s
  const history = new TokenHistory(() => now);
  history.record(5, 100);
  now += 3_000;
  history.record(2, 50);
  now += 10_000;
  history.record(1, 7);
  const buckets = history.buckets();
  assert.equal(buckets.length, BUCKETS);
  assert.deepEqual(buckets.at(-1), { start: 1_000_000_010, generated_tokens: 7, prompt_tokens: 1, generations: 1 });
  assert.deepEqual(buckets.at(-2), { start: 1_000_000_000, generated_tokens: 150, prompt_tokens: 7, generations: 2 });
  assert.ok(buckets.slice(0, -2).every((b) => b.generated_tokens === 0 && b.generations === 0));
  assert.ok(buckets.every((b, i) => i === 0 || b.start - buckets[i - 1]!.start === BUCKET_SECONDS));
});

test("the rate covers the last minute, and buckets older than ten minutes are forgotten, not wrapped around", () => {
  let now = 1_000_000_000_000;
  const history = new TokenHistory(() => now);
  history.record(0, 600);
  now += 5_000; // 5 s into the same bucket: 600 tokens over 5 s of the minute window's 55 s
  assert.equal(history.rate(60), 600 / 55);
  now += BUCKETS * BUCKET_SECONDS * 1000; // exactly one ring later: same slot, other bucket
  assert.equal(history.rate(60), 0);
  assert.ok(history.buckets().every((b) => b.generated_tokens === 0));
  history.record(1, 3);
  assert.equal(history.buckets().at(-1)!.generated_tokens, 3, "a reused slot starts from zero");
});
