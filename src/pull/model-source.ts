// Turns what the user typed after `inferno pull` into the URL to fetch. Accepted forms:
//
//   https://host/path/model.gguf           any http(s) URL without embedded credentials
//   hf:OWNER/REPO/PATH/TO/FILE.gguf        a file on the Hugging Face Hub, branch "main"
//   hf:OWNER/REPO@REVISION/PATH/FILE.gguf  a branch, tag or commit; a revision containing "/"
//                                          (e.g. refs/pr/1) is written percent-encoded: refs%2Fpr%2F1
//
// The hf: path is taken literally, as the Hub displays it (it is percent-encoded here, so a file name
// with a space or "#" works); the revision alone is decoded first so that refs%2Fpr%2F1 survives.
// hf: specs resolve against https://huggingface.co unless an endpoint (a mirror) is given.

/** A spec that cannot be pulled; pullModel reports it as INVALID_SOURCE. */
export class ModelSourceError extends Error {
  override readonly name = "ModelSourceError";
}

/** Where to download from, and the remote file's name (for its extension and a default id). */
export interface ModelSource {
  url: URL;
  fileName: string;
}

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

// Hub owner and repo names; ".." is refused separately so a name can never climb the URL path.
const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function resolveModelSource(spec: string, hfEndpoint?: string): ModelSource {
  const text = spec.trim();
  if (/^hf:/i.test(text)) return resolveHf(text.slice(3), hfEndpoint ?? DEFAULT_HF_ENDPOINT);
  const url = parseHttpUrl(text, "model URL");
  url.hash = ""; // never sent anyway; dropping it keeps the resume bookkeeping stable
  return { url, fileName: lastSegment(url) };
}

function resolveHf(rest: string, endpoint: string): ModelSource {
  const [owner, repoAndRevision, ...path] = rest.split("/");
  const fileName = path[path.length - 1];
  if (!owner || !repoAndRevision || fileName === undefined) {
    throw new ModelSourceError(`expected hf:OWNER/REPO[@REVISION]/FILE, got "hf:${rest}"`);
  }
  const at = repoAndRevision.indexOf("@");
  const repo = at < 0 ? repoAndRevision : repoAndRevision.slice(0, at);
  const revision = at < 0 ? "main" : decodeRevision(repoAndRevision.slice(at + 1));
  for (const [what, name] of [["owner", owner], ["repo", repo]] as const) {
    if (!HF_NAME.test(name) || name.includes("..")) throw new ModelSourceError(`invalid Hugging Face ${what} "${name}"`);
  }
  for (const segment of path) {
    if (segment === "" || segment === "." || segment === ".." || segment.includes("\\")) {
      throw new ModelSourceError(`invalid file path "${path.join("/")}" in hf:${rest}`);
    }
  }
  const base = parseHttpUrl(endpoint, "Hugging Face endpoint");
  base.search = "";
  base.hash = "";
  const prefix = base.href.replace(/\/+$/, ""); // keeps a mirror's path prefix, e.g. https://mirror/hf
  const tail = [owner, repo, "resolve", revision, ...path].map(encodeURIComponent).join("/");
  return { url: new URL(`${prefix}/${tail}`), fileName };
}

function decodeRevision(raw: string): string {
  let revision: string;
  try {
    revision = decodeURIComponent(raw);
  } catch {
    throw new ModelSourceError(`invalid revision "${raw}"`);
  }
  if (revision === "" || /[\0-\x1f]/.test(revision)) throw new ModelSourceError(`invalid revision "${raw}"`);
  return revision;
}

function parseHttpUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ModelSourceError(`${what} is neither an http(s) URL nor hf:OWNER/REPO/FILE: "${text}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ModelSourceError(`${what} must use http or https, not ${url.protocol}`);
  }
  // Credentials in a URL end up in shell history, logs and the resume sidecar.
  if (url.username !== "" || url.password !== "") throw new ModelSourceError(`${what} must not embed credentials`);
  return url;
}

function lastSegment(url: URL): string {
  const raw = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new ModelSourceError(`model URL has a malformed file name "${raw}"`);
  }
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) {
    throw new ModelSourceError(`model URL does not end in a file name: ${url.origin}${url.pathname}`);
  }
  return name;
}
