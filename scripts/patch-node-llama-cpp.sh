#!/usr/bin/env bash
# Applies patches/node-llama-cpp-batching.patch to node-llama-cpp's compiled JavaScript in node_modules, once
# (a second run sees it applied and does nothing). Run by `npm install`/`npm ci` (postinstall, before
# build-llama-addon.sh) and by `npm run build:llama-addon`. Never fails the install: without `patch`, or
# with a node-llama-cpp it does not fit, it says why and leaves node-llama-cpp as it is.
#   INFERNO_LLAMA_ADDON=prebuilt   take the patch back out (node-llama-cpp exactly as published)
#   INFERNO_LLAMA_ADDON_STRICT=1   fail instead (CI)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target="$repo/node_modules/node-llama-cpp"
patch_file="$repo/patches/node-llama-cpp-batching.patch"
say() { echo "patch-node-llama-cpp: $*" >&2; }
give_up() {
  say "$*; node-llama-cpp left as published"
  [[ ${INFERNO_LLAMA_ADDON_STRICT:-0} == 1 ]] && exit 1
  exit 0
}

[[ -d $target/dist ]] || give_up "node-llama-cpp is not installed"
command -v patch >/dev/null || give_up "patch is missing (Debian: apt-get install patch)"
applied() { patch --dry-run --silent --force -R -p1 -d "$target" <"$patch_file" >/dev/null 2>&1; }
if [[ ${INFERNO_LLAMA_ADDON:-} == prebuilt ]]; then
  if applied; then patch --silent --force -R -p1 -d "$target" --no-backup-if-mismatch <"$patch_file" || give_up "could not take the patch out"; fi
  say "node-llama-cpp as published"
  exit 0
fi
if applied; then
  say "the batching patch is in place"
  exit 0
fi
patch --silent --forward -p1 -d "$target" --no-backup-if-mismatch <"$patch_file" >/dev/null || give_up "the patch does not apply to this node-llama-cpp"
say "applied the batching patch"
