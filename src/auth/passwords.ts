// Password hashing shared by the user stores (SQLite in users.ts, Redis in redis-users.ts): salted scrypt
// in PHC-style text, with its cost kept beside each hash.
import { scrypt, type ScryptOptions } from "node:crypto";
import { InfernoError } from "../errors/catalogue.js";

/** scrypt cost: N = 2^logN. Kept with every hash, so raising it later re-hashes each user at their next login. */
export interface ScryptParams {
  logN: number;
  r: number;
  p: number;
  keyLength: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ logN: 15, r: 8, p: 1, keyLength: 64 });

export const MIN_PASSWORD = 8;
// Long enough for any passphrase; a cap keeps a megabyte "password" from being hashed.
export const MAX_PASSWORD = 1024;

export interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

export function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  // Node refuses anything over maxmem (32 MiB by default), and 128·N·r is exactly 32 MiB at the defaults.
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 2 * 128 * N * params.r * params.p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, params.keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** PHC-style text: $scrypt$ln=15,r=8,p=1$<salt>$<hash> (base64 without padding). */
export function encode({ params, salt, hash }: ParsedHash): string {
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

export function decode(text: string): ParsedHash | undefined {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(text);
  if (!m) return undefined;
  const hash = Buffer.from(m[5]!, "base64");
  return { params: { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]), keyLength: hash.length }, salt: Buffer.from(m[4]!, "base64"), hash };
}

export const sameParams = (a: ScryptParams, b: ScryptParams) => a.logN === b.logN && a.r === b.r && a.p === b.p && a.keyLength === b.keyLength;

export function checkPassword(password: unknown): void {
  if (typeof password !== "string" || password.length < MIN_PASSWORD) {
    throw new InfernoError("INVALID_REQUEST", `password must be at least ${MIN_PASSWORD} characters`, undefined, { param: "password" });
  }
  if (password.length > MAX_PASSWORD) {
    throw new InfernoError("INVALID_REQUEST", `password must be at most ${MAX_PASSWORD} characters`, undefined, { param: "password" });
  }
}

// No USER_EXISTS code in the catalogue yet: a 400 naming the conflict until one is added.
export const userExists = (username: string) => new InfernoError("USER_EXISTS", `user '${username}' already exists`, { username }, { param: "username" });
