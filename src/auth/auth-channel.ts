// How replicas tell each other that a credential changed (config redisUrl): whoever revokes a key or
// changes or deletes a user (a replica or the CLI) publishes on `<prefix>auth:invalidate`, and every
// replica drops what it cached about it. A replica whose subscriber reconnects may have missed messages,
// so it drops everything; its caches are short-lived anyway (redis-api-keys.ts, user-roles.ts).
import type { Redis } from "ioredis";
import type { SharedRedis } from "../shared/redis.js";

/** The channel's name under the key prefix. */
export const AUTH_CHANNEL = "auth:invalidate";

/** What changed: one key (by id) or one user (by name). */
export type AuthChange = { kind: "key"; id: string } | { kind: "user"; username: string };

const encode = (change: AuthChange) => (change.kind === "key" ? `key:${change.id}` : `user:${change.username}`);

function decode(message: string): AuthChange | undefined {
  const colon = message.indexOf(":");
  const kind = message.slice(0, colon);
  const name = message.slice(colon + 1);
  if (colon < 0 || name === "") return undefined;
  if (kind === "key") return { kind, id: name };
  if (kind === "user") return { kind, username: name };
  return undefined;
}

/**
 * Tells every replica about a change. Best effort: the write it follows has succeeded, and a replica that
 * misses the message (Redis went away in between) still drops its cached answer within the cache's TTL.
 */
export async function publishChange(redis: SharedRedis, change: AuthChange): Promise<void> {
  await redis.client.publish(`${redis.prefix}${AUTH_CHANNEL}`, encode(change)).catch(() => undefined);
}

export interface AuthChangeListener {
  changed(change: AuthChange): void;
  /** Messages may have been missed (the subscriber reconnected): forget everything cached. */
  reset(): void;
}

/** Subscribes to the channel; `subscribed` resolves once Redis confirmed it (the subscriber is closed with `redis`). */
export function subscribeChanges(redis: SharedRedis, listener: AuthChangeListener): { subscriber: Redis; subscribed: Promise<void> } {
  const sub = redis.subscriber();
  const channel = `${redis.prefix}${AUTH_CHANNEL}`;
  sub.on("message", (from: string, message: string) => {
    if (from !== channel) return;
    const change = decode(message);
    if (change) listener.changed(change);
  });
  // ioredis subscribes again by itself after a reconnect; whatever was published meanwhile is lost.
  sub.on("ready", () => listener.reset());
  const subscribed = sub.subscribe(channel).then(() => undefined, () => undefined);
  return { subscriber: sub, subscribed };
}
