// What the BullMQ queues on Redis (batch items, webhook deliveries) share: their two connections, and a
// close that ends even when Redis is unreachable and leaves nothing reconnecting behind.
import { setTimeout as sleep } from "node:timers/promises";
import type { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";

/**
 * A producer connection that fails at once while Redis is away (requests get their 503) and a consumer
 * for the worker, which BullMQ wants without a retry limit. Their errors are swallowed: SharedRedis logs
 * the outage once.
 */
export function bullConnections(url: string): { producer: Redis; consumer: Redis; all: Redis[] } {
  const producer = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 });
  const consumer = new Redis(url, { maxRetriesPerRequest: null });
  for (const c of [producer, consumer]) c.on("error", () => {});
  return { producer, consumer, all: [producer, consumer] };
}

/**
 * Closes a worker and its queue within `graceMs` + 2 s. With Redis reachable the worker first waits for its
 * running jobs; without, it is forced: a plain close would wait for jobs it cannot move anyway and leave
 * its lock-renewal timer and the blocking connection's reconnect timer keeping the process alive.
 */
export async function closeBull(worker: Worker, queue: Queue, connections: Redis[], graceMs: number): Promise<void> {
  const reachable = connections.every((c) => c.status === "ready");
  await Promise.race([worker.close(!reachable), sleep(graceMs)]).catch(() => {});
  await Promise.race([queue.close(), sleep(2_000)]).catch(() => {});
  void Promise.all([worker.disconnect(), queue.disconnect()]).catch(() => {});
  for (const c of connections) c.disconnect();
}
