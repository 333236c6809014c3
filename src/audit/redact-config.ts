import { redactUrl } from "../shared/redis.js";

/** Keys whose value is a secret whatever it looks like. */
const SECRET_KEY = /secret|password|token|credential/i;
/** A URL with user info (`scheme://user:pass@host`): the password goes. */
const URL_WITH_AUTH = /^[a-z][a-z0-9+.-]*:\/\/[^/\s]*@/i;

/**
 * The configuration as it may be written down (the audit log's config.startup event): secret keys
 * (jwtSecret, and any later key named like one) as "***", passwords in URLs (redisUrl) cut out.
 */
export function redactConfig(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config).map(([key, value]) => [
      key,
      value !== undefined && SECRET_KEY.test(key) ? "***" : typeof value === "string" && URL_WITH_AUTH.test(value) ? redactUrl(value) : value,
    ]),
  );
}

/** Any URL without the password of its user info (model sources may carry one). */
export { redactUrl };
