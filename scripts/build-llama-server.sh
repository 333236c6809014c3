#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the llama.cpp source node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), offline, once, into a cache outside the
# repository: ${INFERNO_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/inferno}/llama-server/<tag>-<cpu|cpu-src|cuda>/bin/llama-server.
# The peer bench (bench/peer.ts) runs it against Inferno and raw node-llama-cpp on the same llama.cpp, and
# Inferno's llama-server engine runs it.
#
# By default (CPU, where node-llama-cpp has prebuilt binaries for this platform) only the server and its
# own libraries are compiled; llama.cpp and ggml themselves are node-llama-cpp's prebuilt shared libraries,
# copied next to the binary, CPU variants included (ggml loads the best one for the CPU at run time). So
# llama-server runs exactly the kernels the in-process engine runs. A -march=native build of ggml with
# Debian's GCC 12 dies with SIGILL/SIGSEGV in ggml's AMX matrix kernels on Intel Sapphire Rapids (seen on
# Q8_0 models), and without AMX it decoded 2.2x slower there than node-llama-cpp's prebuilt variant.
#
#   INFERNO_LLAMA_FROM_SOURCE=1  compile llama.cpp and ggml too (also what happens when node-llama-cpp has
#                           no prebuilt binaries for this platform)
#   INFERNO_LLAMA_NATIVE=0  with a source build: a portable build (ggml's non-native default: AVX2, FMA,
#                           F16C, BMI2) instead of -DGGML_NATIVE=ON, which tunes for this machine's CPU only
#   INFERNO_LLAMA_CUDA=1    a source build with the CUDA backend (-DGGML_CUDA=ON; needs the CUDA toolkit,
#                           nvcc). Not tested on the project's machines, which have no GPU.
#
# Progress goes to stderr; the binary's path is the last line of stdout. When the cached binary answers
# --version and was built the same way, nothing is built. A build takes 3-10 minutes on 2 cores (a
# source build 5-20).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llama_dir="$repo/node_modules/node-llama-cpp/llama"
bundle="$llama_dir/gitRelease.bundle"
info="$llama_dir/llama.cpp.info.json"

say() { echo "build-llama-server: $*" >&2; }
die() { say "$*"; exit 1; }
# A step that fails under set -e says which one, rather than ending the script without a word.
trap 'say "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

[[ -f $bundle && -f $info ]] || die "node-llama-cpp's llama.cpp source is missing ($bundle); run npm install first"
tag=$(sed -n 's/.*"tag"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$info")
[[ -n $tag ]] || die "no release tag in $info"

variant=cpu
flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
)
# node-llama-cpp's prebuilt CPU binaries for this platform (linux-x64, linux-arm64, ...), when installed.
platform=$(node -p 'process.platform + "-" + (process.arch === "arm" ? "armv7l" : process.arch)' 2>/dev/null || true)
prebuilt="$repo/node_modules/@node-llama-cpp/$platform/bins/$platform"
if [[ ${INFERNO_LLAMA_CUDA:-0} == 1 || ${INFERNO_LLAMA_FROM_SOURCE:-0} == 1 || -z $platform || ! -f $prebuilt/_nlcBuildMetadata.json ]]; then
  prebuilt=""
fi
if [[ -n $prebuilt ]]; then
  # Shared libraries with the backend loaded at run time, as node-llama-cpp builds them; ggml-cpu is not
  # compiled here: node-llama-cpp's variants replace it.
  flags+=(-DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU=OFF -DGGML_NATIVE=OFF -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON)
  prebuilt_id="prebuilt:$(cksum "$prebuilt/_nlcBuildMetadata.json" | cut -d' ' -f1)"
else
  flags+=(-DBUILD_SHARED_LIBS=OFF)
  if [[ ${INFERNO_LLAMA_NATIVE:-1} == 0 ]]; then flags+=(-DGGML_NATIVE=OFF); else flags+=(-DGGML_NATIVE=ON); fi
  if [[ ${INFERNO_LLAMA_CUDA:-0} == 1 ]]; then
    variant=cuda
    flags+=(-DGGML_CUDA=ON)
  elif [[ ${INFERNO_LLAMA_FROM_SOURCE:-0} == 1 ]]; then
    # Its own cache entry, so that a source build (say, a native one for a peer bench) sits beside the
    # default one instead of replacing it.
    variant=cpu-src
  fi
  prebuilt_id="source"
fi

cache_root=${INFERNO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inferno}
prefix="$cache_root/llama-server/$tag-$variant"
bin="$prefix/bin/llama-server"

# A binary built with other flags (a native one when a portable one is asked for) is rebuilt, not reused.
if [[ -x $bin ]] && "$bin" --version >/dev/null 2>&1 && [[ "$(cat "$prefix/cmake-flags" 2>/dev/null)" == "${flags[*]} $prebuilt_id" ]]; then
  echo "$bin"
  exit 0
fi

missing=()
for tool in git cmake g++; do command -v "$tool" >/dev/null || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install git cmake g++)"

# The flags the cache check compares: all but LLAMA_OPENSSL, which depends on the source (below).
recorded="${flags[*]} $prebuilt_id"
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
if [[ -n $prebuilt ]]; then
  # The server's own libraries from this build; llama.cpp and ggml from node-llama-cpp, under the names this
  # build linked against (the binary's RUNPATH is $ORIGIN).
  cp -P "$work/build/bin/"lib{llama-server-impl,llama-common,mtmd}.so* "$staged/bin/"
  cp "$prebuilt/"*.so "$staged/bin/"
  for lib in llama ggml ggml-base; do
    # A versioned name (libllama.v0.5.0.so) where node-llama-cpp has one, else the plain one (libggml-base.so).
    src="$staged/bin/lib$lib.so"
    for versioned in "$staged/bin/lib$lib".v*.so; do
      [[ -f $versioned ]] && src=$versioned && break
    done
    [[ -f $src ]] || die "node-llama-cpp's prebuilt lib$lib is missing from $prebuilt"
    [[ $src == "$staged/bin/lib$lib.so" ]] || cp "$src" "$staged/bin/lib$lib.so"
    cp "$src" "$staged/bin/lib$lib.so.0"
  done
  cp "$built" "$staged/bin/llama-server"
  "$staged/bin/llama-server" --version >/dev/null 2>&1 || die "llama-server does not run on node-llama-cpp's prebuilt libraries ($prebuilt); set INFERNO_LLAMA_FROM_SOURCE=1"
else
  cp "$built" "$staged/bin/llama-server"
fi
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
