// Which URLs a webhook may be sent to. A webhook makes the server send requests where a client says,
// so without checks it would reach the server's own network (SSRF): admin consoles, cloud metadata
// (169.254.169.254), services bound to loopback. Rules:
// - http or https only, no credentials in the URL (they would end up in logs and listings);
// - every address the host name resolves to must be public, unless the operator set
//   `webhookAllowPrivate` (private, loopback, link-local, CGNAT, multicast, reserved and
//   IPv4-mapped forms of them are refused);
// - the check runs at registration and again on the connection itself: delivery passes `guardedLookup`
//   to http.request, so the address that is connected to is the address that was checked (a DNS
//   answer that changes in between, "DNS rebinding", cannot slip a private address through).
import dns from "node:dns";
import type { LookupFunction } from "node:net";
import { isIP } from "node:net";
import { isPrivateAddress } from "../core/private-address.js";
import { InfernoError } from "../errors/catalogue.js";

const refuse = (message: string) => new InfernoError("INVALID_REQUEST", message, undefined, { param: "webhook_url" });

/** Checks the form of a webhook URL (scheme, credentials, host); returns it parsed. */
export function parseTarget(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse("webhook_url is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse("webhook_url must be an http or https URL");
  if (url.username !== "" || url.password !== "") throw refuse("webhook_url must not contain credentials; use the webhook secret to authenticate deliveries");
  if (url.hostname === "") throw refuse("webhook_url has no host");
  return url;
}

const bare = (hostname: string) => hostname.replace(/^\[|\]$/g, "");

/** Checks a webhook URL fully, resolving its host name: for registration, so a bad target fails at once. */
export async function validateTarget(raw: string, allowPrivate: boolean): Promise<URL> {
  const url = parseTarget(raw);
  if (allowPrivate) return url;
  const host = bare(url.hostname);
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    throw refuse(`webhook_url host '${host}' does not resolve (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const bad = addresses.find(isPrivateAddress);
  if (bad !== undefined) {
    throw refuse(`webhook_url host '${host}' resolves to ${bad}, a private or loopback address; the operator may allow these with webhookAllowPrivate`);
  }
  return url;
}

/** Thrown by the delivery path for a target that resolves to a refused address. */
export class TargetRefusedError extends Error {
  constructor(address: string) {
    super(`target resolves to ${address}, a private or loopback address (webhookAllowPrivate is off)`);
    this.name = "TargetRefusedError";
  }
}

/** A `lookup` for http.request that refuses private answers, so the checked address is the one connected to. */
export function guardedLookup(allowPrivate: boolean): LookupFunction | undefined {
  if (allowPrivate) return undefined;
  return (hostname, options, callback) => {
    dns.lookup(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
      const bad = list.find(isPrivateAddress);
      if (bad !== undefined) return callback(Object.assign(new TargetRefusedError(bad), { code: "EPRIVATE" }), "", 4);
      callback(null, address, family);
    });
  };
}

/** The connection-time check for a host written as an IP address (Node connects to those without a lookup). */
export function checkLiteralHost(url: URL, allowPrivate: boolean): void {
  const host = bare(url.hostname);
  if (!allowPrivate && isIP(host) !== 0 && isPrivateAddress(host)) throw new TargetRefusedError(host);
}
