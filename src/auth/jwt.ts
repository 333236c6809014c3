import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";
import jwt from "jsonwebtoken";
import { ConfigError } from "../config/config.js";
import { parseKeepAlive } from "../core/duration.js";
import type { Principal, Role } from "./principal.js";

export interface JwtIssuerOptions {
  /** HMAC secret (config `jwtSecret`); without one a generated secret is kept in `dataDir/jwt-secret`. */
  secret?: string | undefined;
  dataDir: string;
  /** Token lifetime: seconds or a duration such as "1h" (config `jwtExpiresIn`). */
  expiresIn: number | string;
  /** Milliseconds since the epoch; tests inject a clock. */
  now?: () => number;
}

/** What `POST /auth/login` returns: the token and its lifetime in seconds. */
export interface IssuedToken {
  token: string;
  expires_in: number;
}

const ISSUER = "inferno";
const SECRET_FILE = "jwt-secret";
const MIN_SECRET = 32;

/**
 * Reads the generated secret, creating it first if absent. Written to a temp file and hard-linked into
 * place: the link fails if another process got there first (then its secret is used), and no reader ever
 * sees a half-written file.
 */
export function loadOrCreateSecret(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, SECRET_FILE);
  const existing = readSecret(file);
  if (existing !== undefined) return existing;
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, randomBytes(48).toString("base64url") + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    unlinkSync(tmp);
  }
  const secret = readSecret(file);
  if (secret === undefined) throw new Error(`${file} vanished while it was being created`);
  return secret;
}

function readSecret(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const secret = text.trim();
  if (secret.length < MIN_SECRET) throw new Error(`${file} holds a secret shorter than ${MIN_SECRET} characters; delete it to generate a new one`);
  return secret;
}

const isRole = (v: unknown): v is Role => v === "admin" || v === "user";

/** Signs and checks HS256 session tokens; only HS256 with this secret and issuer is ever accepted. */
export class JwtIssuer {
  readonly #secret: string;
  readonly #lifetimeS: number;
  readonly #now: () => number;

  constructor(options: JwtIssuerOptions) {
    const ms = parseKeepAlive(options.expiresIn);
    if (ms === undefined || ms === null || ms < 1000) {
      throw new ConfigError(`invalid configuration for "jwtExpiresIn": expected a positive duration of at least 1s (e.g. 3600 or 1h), got ${JSON.stringify(options.expiresIn)}`);
    }
    this.#lifetimeS = Math.floor(ms / 1000);
    this.#secret = options.secret ?? loadOrCreateSecret(options.dataDir);
    this.#now = options.now ?? Date.now;
  }

  /** Lifetime of the tokens this issuer signs, in seconds. */
  get expiresIn(): number {
    return this.#lifetimeS;
  }

  sign(principal: Pick<Principal, "user" | "role">): IssuedToken {
    const iat = Math.floor(this.#now() / 1000);
    const payload = { sub: principal.user, role: principal.role, iat, exp: iat + this.#lifetimeS, iss: ISSUER };
    return { token: jwt.sign(payload, this.#secret, { algorithm: "HS256" }), expires_in: this.#lifetimeS };
  }

  /**
   * The principal of a valid token, or undefined (bad signature, other algorithm, expired, wrong issuer,
   * malformed). Its role is the one signed at login: the server replaces it with the user's current role
   * (user-roles.ts), so the claim only tells clients what they had when they logged in.
   */
  verify(token: string): Principal | undefined {
    let payload: string | jwt.JwtPayload;
    try {
      payload = jwt.verify(token, this.#secret, {
        algorithms: ["HS256"],
        issuer: ISSUER,
        clockTimestamp: Math.floor(this.#now() / 1000),
      });
    } catch {
      return undefined;
    }
    // Every token this issuer signs has these; one without them was not made here.
    if (typeof payload !== "object" || typeof payload.sub !== "string" || payload.sub === "" || typeof payload.exp !== "number") return undefined;
    const role: unknown = payload.role;
    if (!isRole(role)) return undefined;
    return { user: payload.sub, role, via: "jwt" };
  }
}
