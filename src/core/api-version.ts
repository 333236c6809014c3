// The version of Inferno's API contract (README, API versioning), told to every client and checked on
// every request that names one. Only the major matters for refusal: a minor adds, never breaks.
import { InfernoError } from "../errors/catalogue.js";

/** The API version every response carries (`API-Version` header, gRPC `api-version` metadata, IPC `hello`). */
export const API_VERSION = "1.0";
/** The one major this server serves. */
export const API_MAJOR = 1;

/** `1`, `1.0`, `1.3`: a major with an optional minor; anything else is malformed. */
const VERSION_PATTERN = /^\s*(\d{1,6})(?:\.(\d{1,6}))?\s*$/;

/**
 * Checks a client's requested API version: absent means the current one; another major, or a value that
 * is not `MAJOR[.MINOR]`, is UNSUPPORTED_API_VERSION. A higher minor of this major is served (the client
 * gets what 1.0 offers and can read the answer's header).
 */
export function checkApiVersion(requested: string | undefined): void {
  if (requested === undefined) return;
  const m = VERSION_PATTERN.exec(requested);
  if (m && Number(m[1]) === API_MAJOR) return;
  const shown = requested.slice(0, 32);
  throw new InfernoError(
    "UNSUPPORTED_API_VERSION",
    m ? `API version '${shown}' is not served; this server speaks ${API_VERSION} (major ${API_MAJOR})` : `API-Version '${shown}' is not a version such as ${API_VERSION}`,
    { requested: shown, supported: [API_VERSION] },
  );
}
