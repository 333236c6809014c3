import type { GenerationChunk, GenerationResult, GenerationStream } from "./generation.js";

const DONE: IteratorReturnResult<void> = Object.freeze({ done: true, value: undefined });

/**
 * A generation as a plain async iterable: `onChunk` for each chunk (undefined: nothing for that chunk), `onDone`
 * once with the result. Ending early (the client left: `return`), an error from the generation, or one thrown by
 * `onChunk` or `onDone` returns the generation too, which frees its sequence.
 *
 * Written as an iterator rather than an async generator: every token of every stream passes here, and a
 * generator's resume and its yield's implicit await are promises and microtasks a `.then` does not need.
 * Like a generator's, `next` is meant to be called again only after the last call settled.
 */
export function mapGeneration<T>(
  stream: GenerationStream,
  onChunk: (chunk: GenerationChunk) => T | undefined,
  onDone: (result: GenerationResult) => Iterable<T>,
): AsyncGenerator<T, void, void> {
  let tail: Iterator<T> | undefined;
  let finished = false;
  /** Returns the generation once (also after it ended, as a generator's finally would). */
  const finish = (): Promise<unknown> => {
    if (finished) return Promise.resolve();
    finished = true;
    return stream.return(undefined as never);
  };
  const fail = (err: unknown): Promise<never> =>
    finish().then(
      () => Promise.reject(err),
      () => Promise.reject(err),
    );
  const fromTail = (): Promise<IteratorResult<T, void>> => {
    try {
      const step = tail!.next();
      if (!step.done) return Promise.resolve({ done: false, value: step.value });
      tail = undefined;
      return finish().then(() => DONE);
    } catch (err) {
      tail = undefined;
      return fail(err);
    }
  };
  const onStep = (step: IteratorResult<GenerationChunk, GenerationResult>): IteratorResult<T, void> | Promise<IteratorResult<T, void>> => {
    if (step.done) {
      tail = onDone(step.value)[Symbol.iterator]();
      return fromTail();
    }
    const out = onChunk(step.value);
    return out !== undefined ? { done: false, value: out } : iterator.next();
  };
  const iterator: AsyncGenerator<T, void, void> = {
    next() {
      if (tail) return fromTail();
      if (finished) return Promise.resolve(DONE);
      return stream.next().then(onStep).catch(fail);
    },
    return() {
      tail = undefined;
      return finish().then(() => DONE);
    },
    throw(err: unknown) {
      tail = undefined;
      return fail(err);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
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
