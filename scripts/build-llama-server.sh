#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the llama.cpp source node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), offline, once, into a cache outside the
# repository: ${INFERNO_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/inferno}/llama-server/<tag>-<cpu|cuda>/bin/llama-server.
# The peer bench (bench/peer.ts) runs it against Inferno and raw node-llama-cpp on the same llama.cpp.
#
#   INFERNO_LLAMA_NATIVE=0  a portable build (ggml's non-native default: AVX2, FMA, F16C, BMI2) instead
#                           of -DGGML_NATIVE=ON, which tunes for this machine's CPU only
#   INFERNO_LLAMA_CUDA=1    also builds the CUDA backend (-DGGML_CUDA=ON; needs the CUDA toolkit, nvcc).
#                           Not tested on the project's machines, which have no GPU.
#
# The binary is self-contained (static ggml and llama, no curl, no OpenSSL, no web UI). Progress goes to
# stderr; the binary's path is the last line of stdout. When the cached binary answers --version and was
# built with the same flags, nothing is built. A build takes 10–20 minutes on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llama_dir="$repo/node_modules/node-llama-cpp/llama"
bundle="$llama_dir/gitRelease.bundle"
info="$llama_dir/llama.cpp.info.json"

say() { echo "build-llama-server: $*" >&2; }
die() { say "$*"; exit 1; }

[[ -f $bundle && -f $info ]] || die "node-llama-cpp's llama.cpp source is missing ($bundle); run npm install first"
tag=$(sed -n 's/.*"tag"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$info")
[[ -n $tag ]] || die "no release tag in $info"

variant=cpu
flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
)
if [[ ${INFERNO_LLAMA_NATIVE:-1} == 0 ]]; then flags+=(-DGGML_NATIVE=OFF); else flags+=(-DGGML_NATIVE=ON); fi
if [[ ${INFERNO_LLAMA_CUDA:-0} == 1 ]]; then
  variant=cuda
  flags+=(-DGGML_CUDA=ON)
fi

cache_root=${INFERNO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inferno}
prefix="$cache_root/llama-server/$tag-$variant"
bin="$prefix/bin/llama-server"

# A binary built with other flags (a native one when a portable one is asked for) is rebuilt, not reused.
if [[ -x $bin ]] && "$bin" --version >/dev/null 2>&1 && [[ "$(cat "$prefix/cmake-flags" 2>/dev/null)" == "${flags[*]}" ]]; then
  echo "$bin"
  exit 0
fi

missing=()
for tool in git cmake g++; do command -v "$tool" >/dev/null || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install git cmake g++)"

# The flags the cache check compares: all but LLAMA_OPENSSL, which depends on the source (below).
recorded="${flags[*]}"
mkdir -p "$cache_root/llama-server"
work=$(mktemp -d "$cache_root/llama-server/.build-$tag-$variant.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS

say "cloning llama.cpp $tag from $bundle"
git -c advice.detachedHead=false clone --quiet "$bundle" "$work/src" >&2
# Only where this llama.cpp has the option (newer ones link OpenSSL when they find it).
if grep -q 'option(LLAMA_OPENSSL\b' "$work/src/CMakeLists.txt"; then flags+=(-DLLAMA_OPENSSL=OFF); fi

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
say "configuring: ${flags[*]}"
cmake -S "$work/src" -B "$work/build" "${generator[@]}" "${flags[@]}" >&2
say "building llama-server with $(nproc) jobs"
cmake --build "$work/build" --target llama-server -j"$(nproc)" >&2

built="$work/build/bin/llama-server"
"$built" --version >/dev/null 2>&1 || die "the built $built does not run"

# Replace the cache entry in one rename, so that a concurrent reader never sees half a binary.
staged="$work/out"
mkdir -p "$staged/bin"
cp "$built" "$staged/bin/llama-server"
echo "$recorded" >"$staged/cmake-flags"
{
  echo "llama.cpp $tag (node-llama-cpp's bundle), built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - started)) s"
  echo "flags: ${flags[*]}"
  "$built" --version 2>&1
} >"$staged/build-info.txt"
rm -rf "$prefix"
mv "$staged" "$prefix"
say "built in $((SECONDS - started)) s"
echo "$bin"
