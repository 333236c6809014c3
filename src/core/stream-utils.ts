import type { GenerationChunk, GenerationResult, GenerationStream } from "./generation.js";

/**
 * A generation as a plain async iterable: `onChunk` for each chunk, `onDone` once with the result.
 * Returning early (the client left) returns the generation too, which frees its sequence.
 */
export async function* mapGeneration<T>(
  stream: GenerationStream,
  onChunk: (chunk: GenerationChunk) => T | undefined,
  onDone: (result: GenerationResult) => Iterable<T>,
): AsyncGenerator<T, void, void> {
  try {
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        yield* onDone(step.value);
        return;
      }
      const out = onChunk(step.value);
      if (out !== undefined) yield out;
    }
  } finally {
    await stream.return(undefined as never);
  }
}

/** Interleaves several async iterables in arrival order (n choices generated in parallel). */
export async function* mergeAsync<T>(sources: AsyncIterable<T>[]): AsyncGenerator<T, void, void> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ i: number; step: IteratorResult<T> }>>();
  const pull = (i: number) => pending.set(i, iterators[i]!.next().then((step) => ({ i, step })));
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { i, step } = await Promise.race(pending.values());
      if (step.done) {
        pending.delete(i);
        continue;
      }
      pull(i);
      yield step.value;
    }
  } finally {
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}

/**
 * Starts choice 0 now, so a bad request fails as a plain HTTP error before any streaming, and the
 * others only when they are consumed: starting every choice first could wait forever for sequences
 * that the unconsumed first choices hold.
 */
export async function firstEager<T>(start: (i: number) => Promise<T>): Promise<(i: number) => Promise<T>> {
  const first = await start(0);
  return (i) => (i === 0 ? Promise.resolve(first) : start(i));
}
