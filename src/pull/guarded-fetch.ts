// The fetch of a server-side pull (POST /models/pull). An admin can make the server download from any
// URL, so without checks a pull would reach the server's own network (SSRF): cloud metadata, services
// bound to loopback, admin consoles. The rules are the webhooks' (src/webhooks/webhook-target.ts):
// - every address a host resolves to must be public unless the operator set `pullAllowPrivate`;
// - the check is made on the connection itself (a `lookup` that refuses private answers, and a check of
//   hosts written as IP addresses, which Node connects to without a lookup), so a DNS answer that
//   changes between a check and the connection cannot slip a private address through;
// - redirects are followed here, hop by hop, each hop checked the same way (fetch's own redirects
//   would connect without asking).
// pullModel sees an ordinary fetch: a Response whose body streams from the socket.
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { VERSION } from "../version.js";
import { isPrivateAddress } from "../core/private-address.js";

/** A host that resolves to a refused address; pullModel reports it as DOWNLOAD_FAILED with this cause. */
export class PrivateAddressError extends Error {
  override readonly name = "PrivateAddressError";
  readonly code = "EPRIVATE";
  constructor(readonly host: string, readonly address: string) {
    super(`${host === address ? host : `${host} resolves to ${address}, which`} is a private or loopback address; the operator may allow these with pullAllowPrivate`);
  }
}

export interface GuardedFetchOptions {
  allowPrivate: boolean;
  /** The addresses refused when private ones are not allowed (default: isPrivateAddress); tests narrow it. */
  isRefused?: (address: string) => boolean;
  maxRedirects?: number;
  /** An upstream silent this long, while connecting or mid-body, fails the download. */
  idleTimeoutMs?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([204, 205, 304]);

/** A GET-only fetch over node:http(s) that refuses private addresses on every connection, redirects included. */
export function guardedFetch(opts: GuardedFetchOptions): typeof fetch {
  const refused = opts.allowPrivate ? () => false : (opts.isRefused ?? isPrivateAddress);
  const maxRedirects = opts.maxRedirects ?? 10;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
      const bad = list.find(refused);
      if (bad !== undefined) return callback(new PrivateAddressError(hostname, bad), "", 4);
      callback(null, address, family);
    });
  };

  const get = (url: URL, headers: Record<string, string>, signal: AbortSignal | undefined) => {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (isIP(host) !== 0 && refused(host)) return Promise.reject(new PrivateAddressError(host, host));
    const client = url.protocol === "https:" ? https : http;
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = client.get(url, { headers, lookup, timeout: idleTimeoutMs, ...(signal ? { signal } : {}) }, resolve);
      req.on("error", reject);
      // Also fires once the body is streaming: destroying the request then fails the body read.
      req.on("timeout", () => req.destroy(new Error(`${url.host} sent nothing for ${idleTimeoutMs} ms`)));
    });
  };

  return async (input, init) => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    const headers: Record<string, string> = { "user-agent": `Inferno/${VERSION}` };
    new Headers(init?.headers).forEach((value, key) => (headers[key] = value));
    const signal = init?.signal ?? undefined;
    for (let hops = 0; ; hops++) {
      const res = await get(url, headers, signal);
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode ?? 0) || !location) return toResponse(res);
      res.resume();
      if (hops >= maxRedirects) throw new Error(`more than ${maxRedirects} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== "http:" && next.protocol !== "https:") throw new Error(`redirect to a ${next.protocol} URL refused`);
      url = next;
    }
  };
}

function toResponse(res: http.IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
  if (NULL_BODY.has(status)) res.resume();
  const body = NULL_BODY.has(status) ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
  return new Response(body, { status, statusText: res.statusMessage ?? "", headers });
}
