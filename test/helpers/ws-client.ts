// A WebSocket client for tests of `/ws`, on the `ws` package the server itself uses.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** The parts of the `ws` client used here (the package ships no types). */
export interface WsClient {
  readonly readyState: number;
  readonly _socket: Socket;
  send(data: string | Buffer): void;
  close(code?: number): void;
  on(event: "open", listener: () => void): void;
  on(event: "message", listener: (data: Buffer) => void): void;
  on(event: "close", listener: (code: number) => void): void;
  on(event: "error", listener: (err: Error) => void): void;
}
export type WsOptions = { headers?: Record<string, string>; autoPong?: boolean };
export const WebSocket = createRequire(import.meta.url)("ws") as new (url: string, options?: WsOptions) => WsClient;
export type Msg = Record<string, any>;

/** A client socket that keeps every message it gets, so tests can wait for the ones they expect. */
export class Conn {
  readonly all: Msg[] = [];
  private readonly inbox: Msg[] = [];
  readonly closed: Promise<number>;
  private constructor(readonly ws: WsClient) {
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString()) as Msg;
      this.all.push(m);
      this.inbox.push(m);
    });
    ws.on("error", () => {});
    this.closed = new Promise((resolve) => ws.on("close", resolve));
  }
  static open(url: string, options: WsOptions = {}): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const conn = new Conn(new WebSocket(url, options));
      conn.ws.on("open", () => resolve(conn));
      conn.ws.on("error", reject);
    });
  }
  send(message: object | string | Buffer): void {
    this.ws.send(typeof message === "object" && !Buffer.isBuffer(message) ? JSON.stringify(message) : message);
  }
  /** The first unclaimed message that matches, in arrival order. */
  async next(match: (m: Msg) => boolean = () => true, timeoutMs = 30_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(match);
      if (i !== -1) return this.inbox.splice(i, 1)[0]!;
      assert.ok(this.ws.readyState <= 1, "socket closed while waiting for a message");
      assert.ok(Date.now() < deadline, "no matching message in time");
      await sleep(5);
    }
  }
  /** The tokens and the last message (complete or error) of one inference. */
  async result(id: string): Promise<{ tokens: Msg[]; end: Msg }> {
    const end = await this.next((m) => m.id === id && m.type !== "token");
    const tokens = this.all.filter((m) => m.id === id && m.type === "token");
    return { tokens, end };
  }
  tokensOf(id: string): number {
    return this.all.filter((m) => m.id === id && m.type === "token").length;
  }
}
