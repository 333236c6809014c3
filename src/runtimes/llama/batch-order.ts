import type { BatchItem, CustomBatchingPrioritizationStrategy, LlamaContext, PrioritizedBatchItem } from "node-llama-cpp";

/** What node-llama-cpp's batch loop queues per sequence (3.x internals): the items it hands a strategy, in order. */
interface QueuedDecode {
  sequenceId: number;
  tokens: readonly number[];
}

/**
 * node-llama-cpp's "maximumParallelism" batch strategy, with the batch's sequences in ascending id order.
 *
 * Why: node-llama-cpp creates its contexts with one KV stream per sequence (`kv_unified = false`), and
 * llama.cpp then splits a batch into micro-batches that each hold a run of *consecutive* sequence ids in
 * batch order (`split_equal(..., sequential = true)` in llama-batch.cpp). node-llama-cpp orders a batch by
 * when each sequence queued its decode, which after a few tokens is a shuffle: 8 streams' 8 tokens ran as
 * several micro-batches, each reading all the weights again, and a token cost as much as in a lone stream.
 * In id order the 8 tokens are one micro-batch, as in llama-server, whose slots decode in id order.
 *
 * The share each item gets is the built-in strategy's: an equal part of the batch, then what is left to
 * the clipped items by evaluation priority.
 */
export function sequenceOrderStrategy(context: () => LlamaContext | undefined): CustomBatchingPrioritizationStrategy {
  return ({ items, size }) => {
    const queued = (context() as unknown as { _queuedDecodes?: QueuedDecode[] } | undefined)?._queuedDecodes;
    // The items are built from the queue, one per entry and in its order; anything else keeps the given order.
    const matches = queued?.length === items.length && items.every((item, i) => item.tokens === queued[i]!.tokens);
    const ordered = matches ? sortBySequence(items, queued!) : [...items];
    return share(ordered, size);
  };
}

function sortBySequence(items: readonly BatchItem[], queued: QueuedDecode[]): BatchItem[] {
  return items
    .map((item, i) => ({ item, id: queued[i]!.sequenceId }))
    .sort((a, b) => a.id - b.id)
    .map((x) => x.item);
}

function share(items: BatchItem[], size: number): PrioritizedBatchItem[] {
  let left = size;
  const each = Math.floor(size / Math.max(1, items.length));
  const res: PrioritizedBatchItem[] = [];
  for (const item of items) {
    if (left === 0) break;
    const processAmount = Math.min(item.tokens.length, each, left);
    res.push({ item, processAmount });
    left -= processAmount;
  }
  const clipped = res.filter((r) => r.processAmount < r.item.tokens.length).sort((a, b) => b.item.evaluationPriority - a.item.evaluationPriority);
  for (const r of clipped) {
    if (left === 0) break;
    const more = Math.min(r.item.tokens.length - r.processAmount, left);
    r.processAmount += more;
    left -= more;
  }
  return res;
}
