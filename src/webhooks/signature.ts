// Standard Webhooks signing (https://www.standardwebhooks.com), so receivers can use the existing
// verifier libraries (`standardwebhooks` for Node, `standardwebhooks` for Python, svix, ...).
//
// Every attempt carries
//   webhook-id:        the delivery id (`dlv_...`): one per event and destination, the same on every retry
//   webhook-timestamp: the attempt's time, unix seconds (receivers refuse stale ones: replay protection)
//   webhook-signature: `v1,` + base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`
// The body is the same bytes on every retry; only the timestamp and signature change per attempt (a
// retry hours later still falls inside the receiver's tolerance).
//
// Keys: a secret of the form `whsec_<base64>` (what Inferno generates, what the libraries expect) is
// used as its decoded bytes; any other secret (those registered before this scheme) as its UTF-8 bytes,
// which the libraries take as `new Webhook(secret, { format: "raw" })`, or as
// `"whsec_" + Buffer.from(secret).toString("base64")`.
import { createHmac, randomBytes } from "node:crypto";

export const SECRET_PREFIX = "whsec_";

/** A new secret in the `whsec_<base64>` form (24 random bytes). */
export const newWebhookSecret = () => `${SECRET_PREFIX}${randomBytes(24).toString("base64")}`;

/** The HMAC key of a secret (see the top of the file). */
export function signingKey(secret: string): Buffer {
  return secret.startsWith(SECRET_PREFIX) ? Buffer.from(secret.slice(SECRET_PREFIX.length), "base64") : Buffer.from(secret, "utf8");
}

/** The body of an event: `{"event", "timestamp" (ISO 8601, seconds), "data"}` as JSON. */
export function eventBody(event: string, data: unknown, at = new Date()): string {
  return JSON.stringify({ event, timestamp: at.toISOString().replace(/\.\d{3}Z$/, "Z"), data });
}

/** The three Standard Webhooks headers of one attempt to send `body` as message `id`. */
export function signatureHeaders(secret: string, id: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  const mac = createHmac("sha256", signingKey(secret)).update(`${id}.${timestamp}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": `v1,${mac}` };
}
