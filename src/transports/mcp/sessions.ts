// The live MCP sessions of the Streamable HTTP transport. A session is a server and its transport in
// memory, so none may outlive its use (spec: "session leaks"): each closes after `idleMs` without a
// request (none running), on DELETE, on the drain and on close; `maxSessions` bounds them together.
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { FastifyBaseLogger } from "fastify";
import { InfernoError } from "../../errors/catalogue.js";

export interface McpSession {
  /** Set once the client's initialize succeeded. */
  id: string | undefined;
  /** The user who opened it: only they may use it (another's request is told it does not exist). */
  owner: string;
  server: Server;
  transport: StreamableHTTPServerTransport;
}

interface Entry {
  session: McpSession;
  running: number;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
}

export interface McpSessionSettings {
  idleMs: number;
  maxSessions: number;
}

export class McpSessions {
  private readonly live = new Map<string, Entry>();
  /** Sessions being initialized (not yet in `live`), counted against the cap. */
  private opening = 0;
  private draining = false;

  constructor(private readonly settings: McpSessionSettings, private readonly log: FastifyBaseLogger) {}

  get size(): number {
    return this.live.size;
  }

  /** Refuses a new session when the cap is reached, before anything is built for it. */
  reserve(): () => void {
    if (this.draining) throw new InfernoError("SERVICE_UNAVAILABLE", "the server is shutting down", { reason: "shutting_down", retry_after: 1 });
    if (this.live.size + this.opening >= this.settings.maxSessions) {
      throw new InfernoError("SERVICE_UNAVAILABLE", `this server has its maximum of ${this.settings.maxSessions} MCP sessions open; close one or retry later`, {
        reason: "mcp_sessions", max_sessions: this.settings.maxSessions, retry_after: 1,
      });
    }
    this.opening++;
    let released = false;
    return () => {
      if (!released) this.opening--;
      released = true;
    };
  }

  /** Called by the transport once initialize succeeded: the session is live and its idle clock runs. */
  add(session: McpSession & { id: string }): void {
    const entry: Entry = { session, running: 0, timer: undefined, closed: false };
    this.live.set(session.id, entry);
    // The protocol closes with its transport (DELETE, a failed stream, close()): the session goes with it.
    session.server.onclose = () => this.forget(session.id);
    this.arm(entry);
    this.log.debug({ session: session.id, owner: session.owner }, "MCP session opened");
  }

  /** The session `id` when `owner` opened it. */
  find(id: string, owner: string): McpSession | undefined {
    const entry = this.live.get(id);
    return entry && entry.session.owner === owner ? entry.session : undefined;
  }

  /** A request of the session starts: it cannot expire until the returned function is called. */
  begin(id: string): () => void {
    const entry = this.live.get(id);
    if (!entry) return () => {};
    entry.running++;
    clearTimeout(entry.timer);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      entry.running--;
      if (entry.running === 0) this.arm(entry);
    };
  }

  /** The drain: no new session; idle ones close now, busy ones when their last request ends; the GET streams end. */
  drain(): void {
    this.draining = true;
    for (const entry of this.live.values()) {
      entry.session.transport.closeStandaloneSSEStream();
      if (entry.running === 0) void this.close(entry, "drain");
    }
  }

  async closeAll(): Promise<void> {
    this.draining = true;
    await Promise.all([...this.live.values()].map((e) => this.close(e, "shutdown")));
  }

  /** Closes the session (DELETE /mcp, expiry, drain); its transport's onclose removes it. */
  async closeId(id: string, reason: string): Promise<void> {
    const entry = this.live.get(id);
    if (entry) await this.close(entry, reason);
  }

  private arm(entry: Entry): void {
    clearTimeout(entry.timer);
    if (this.draining) {
      void this.close(entry, "drain");
      return;
    }
    entry.timer = setTimeout(() => void this.close(entry, "idle"), this.settings.idleMs);
    entry.timer.unref();
  }

  private async close(entry: Entry, reason: string): Promise<void> {
    if (entry.closed) return;
    entry.closed = true;
    clearTimeout(entry.timer);
    const id = entry.session.id!;
    this.log.info({ session: id, reason }, "MCP session closed");
    try {
      await entry.session.server.close();
    } catch (err) {
      this.log.warn({ err, session: id }, "MCP session did not close cleanly");
    } finally {
      this.forget(id);
    }
  }

  private forget(id: string): void {
    const entry = this.live.get(id);
    if (!entry) return;
    entry.closed = true;
    clearTimeout(entry.timer);
    this.live.delete(id);
  }
}
