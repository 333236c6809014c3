import http from "node:http";

export interface HttpAnswer {
  status: number;
  /** The body as text (UTF-8). */
  text: string;
  /** The body's bytes, for binary answers. */
  body: Buffer;
  headers: http.IncomingHttpHeaders;
}

/**
 * A POST over node:http with a keep-alive agent, JSON unless `headers` say otherwise. The load generator uses it
 * rather than fetch: on the 2-core bench machine Node 20's fetch cost about 5× the client CPU per request (344
 * against 65 µs at 32 clients), and the client's CPU is taken from the server it shares the cores with.
 */
export function httpPost(agent: http.Agent, url: string, body: Buffer, headers: Record<string, string> = { "content-type": "application/json" }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent, headers: { ...headers, "content-length": body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, text: bytes.toString(), body: bytes, headers: res.headers });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export const keepAliveAgent = (sockets: number) => new http.Agent({ keepAlive: true, maxSockets: sockets });
