#!/usr/bin/env bash
# Builds node-llama-cpp's native addon (llama-addon.node) with patches/node-llama-cpp-threadpool.patch,
# patches/node-llama-cpp-sample-tokens.patch and patches/node-llama-cpp-generate-tokens.patch, in that order, and puts it in place of the prebuilt one in node_modules/@node-llama-cpp/<platform>/bins/<platform>/ (the
# prebuilt one is kept beside it as llama-addon.node.prebuilt). Only the addon's own C++ is compiled, in
# about 30 s: llama.cpp and ggml stay node-llama-cpp's prebuilt libraries (CPU variants chosen at run time),
# the headers come from the llama.cpp source node-llama-cpp ships (llama/gitRelease.bundle), offline.
#
# Why: the prebuilt addon attaches no ggml thread pool, so every llama_decode creates and joins its threads;
# with 2 threads on 2 cores that made one stream 2-3x slower than with 1 (README, Performance). It samples
# each sequence of a batch in its own trip to libuv's thread pool (sampleTokens does them in one). And every
# token of a stream takes four thread wake-ups between the pool and the event loop (generateTokens decodes and
# samples a lone stream on a thread of its own, as llama-server does).
#
# Run by `npm install`/`npm ci` (postinstall) and by `npm run build:llama-addon`. Never fails the install:
# without g++, the node headers or the prebuilt package, it says why and leaves the prebuilt addon.
#   INFERNO_LLAMA_ADDON=prebuilt   put the prebuilt addon back (and skip the build)
#   INFERNO_LLAMA_ADDON_STRICT=1   fail instead of falling back (CI)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "build-llama-addon: $*" >&2; }
give_up() {
  say "$*; keeping node-llama-cpp's prebuilt addon"
  [[ ${INFERNO_LLAMA_ADDON_STRICT:-0} == 1 ]] && exit 1
  exit 0
}

llama_dir="$repo/node_modules/node-llama-cpp/llama"
patch_files=("$repo/patches/node-llama-cpp-threadpool.patch" "$repo/patches/node-llama-cpp-sample-tokens.patch" "$repo/patches/node-llama-cpp-generate-tokens.patch")
platform=$(node -p 'process.platform + "-" + (process.arch === "arm" ? "armv7l" : process.arch)' 2>/dev/null) || give_up "node is not runnable"
bins="$repo/node_modules/@node-llama-cpp/$platform/bins/$platform"
addon="$bins/llama-addon.node"
kept="$addon.prebuilt"

if [[ ${INFERNO_LLAMA_ADDON:-} == prebuilt ]]; then
  if [[ -f $kept ]]; then mv -f "$kept" "$addon" && rm -f "$bins/_infernoAddon"; fi
  say "using node-llama-cpp's prebuilt addon"
  exit 0
fi
[[ $platform == linux-* ]] || give_up "only Linux is built this way ($platform)"
[[ -f $bins/_nlcBuildMetadata.json && -f $addon ]] || give_up "node-llama-cpp's prebuilt binaries for $platform are not installed"
[[ -f $llama_dir/gitRelease.bundle && -d $llama_dir/addon ]] || give_up "node-llama-cpp's llama.cpp source is missing"

# Built once per (patch, node-llama-cpp build): a marker beside the addon says which.
stamp="$(cat "${patch_files[@]}" | cksum | cut -d' ' -f1)-$(cksum <"$bins/_nlcBuildMetadata.json" | cut -d' ' -f1)-$(node -p process.versions.modules)"
if [[ -f $kept && "$(cat "$bins/_infernoAddon" 2>/dev/null)" == "$stamp" ]]; then
  say "the patched addon is in place"
  exit 0
fi

for tool in git g++ patch; do command -v "$tool" >/dev/null || give_up "$tool is missing (Debian: apt-get install git g++ patch)"; done
node_include="$(dirname "$(dirname "$(node -p process.execPath)")")/include/node"
[[ -f $node_include/node_api.h ]] || give_up "Node's headers are not at $node_include"
napi_include=$(cd "$repo" && node -p "require('path').resolve(require('node-addon-api').include_dir)" 2>/dev/null) || give_up "node-addon-api is not installed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
git -c advice.detachedHead=false clone --quiet "$llama_dir/gitRelease.bundle" "$work/llama.cpp" >&2 || give_up "could not read $llama_dir/gitRelease.bundle"
mkdir -p "$work/src/llama" && cp -r "$llama_dir/addon" "$work/src/llama/addon"
for patch_file in "${patch_files[@]}"; do
  (cd "$work/src" && patch --quiet -p1 <"$patch_file") || give_up "$(basename "$patch_file") does not apply to this node-llama-cpp"
done

libs=()
for lib in llama ggml; do
  found=("$bins"/lib$lib.v*.so)
  [[ -f ${found[0]} ]] || found=("$bins/lib$lib.so")
  libs+=("-l:$(basename "${found[0]}")")
done
say "compiling the addon with the thread-pool, sample-tokens and generate-tokens patches"
g++ -O2 -std=c++17 -shared -fPIC -fexceptions -DNAPI_VERSION=7 -DNDEBUG \
  -I"$napi_include" -I"$node_include" -I"$work/llama.cpp/include" -I"$work/llama.cpp/ggml/include" \
  -I"$work/llama.cpp/common" -I"$work/llama.cpp/src" -I"$work/llama.cpp" \
  -o "$work/llama-addon.node" "$work/src/llama/addon/"*.cpp "$work/src/llama/addon/globals/"*.cpp \
  -L"$bins" "${libs[@]}" -l:libggml-base.so -l:libllama-common.so -Wl,-rpath,'$ORIGIN' >&2 || give_up "the addon did not compile"
# It must load next to the libraries it will run with.
cp "$work/llama-addon.node" "$bins/.llama-addon.node.new"
node -e 'process.dlopen({ exports: {} }, process.argv[1])' "$bins/.llama-addon.node.new" 2>/dev/null || {
  rm -f "$bins/.llama-addon.node.new"
  give_up "the built addon does not load"
}
[[ -f $kept ]] || cp "$addon" "$kept"
mv -f "$bins/.llama-addon.node.new" "$addon"
echo "$stamp" >"$bins/_infernoAddon"
say "built in $((SECONDS - started)) s: $addon (the prebuilt one is $kept)"
