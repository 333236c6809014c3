import { fork, type ChildProcess } from "node:child_process";
import { llamaProcessEnv } from "../src/runtimes/llama/threadpool.js";

/** A bench process forked with Inferno's libuv pool size, answering `{ id, ...request }` messages with `{ id, result | error }`. */
export interface ChildRpc<Req> {
  child: ChildProcess;
  /** The child's first message, sent once it is ready. */
  ready: unknown;
  ask<T>(msg: Req): Promise<T>;
  /** Disconnects and waits for the child to exit (it closes when its parent disconnects). */
  close(): Promise<void>;
}

/** Forks `script` with `arg` (and node flags `execArgv`), waits for its ready message, and wires request/answer over IPC; `label` names it in errors. */
export async function forkRpc<Req extends object>(script: URL, arg: string, label: string, execArgv = process.execArgv): Promise<ChildRpc<Req>> {
  const child = fork(script, [arg], { stdio: ["ignore", "inherit", "inherit", "ipc"], env: llamaProcessEnv(), execArgv });
  const ready = await new Promise<unknown>((resolve, reject) => {
    child.once("message", resolve);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${label} exited early (code ${code})`)));
  });
  child.removeAllListeners("exit");
  child.removeAllListeners("error");
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on("message", (msg: { id: number; result?: unknown; error?: string }) => {
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error !== undefined) waiter?.reject(new Error(msg.error));
    else waiter?.resolve(msg.result);
  });
  child.on("exit", (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${label} exited (code ${code})`));
    pending.clear();
  });
  return {
    child,
    ready,
    ask: <T>(msg: Req) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ ...msg, id });
      }),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.disconnect();
      await exited;
    },
  };
}
