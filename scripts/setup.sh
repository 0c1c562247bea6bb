#!/usr/bin/env bash
# Prepares a fresh machine for powersample: Debian packages, llama.cpp built from the pinned
# llama-cpp-python source distribution, and the default model. Everything downloaded or built
# lives in a cache outside the repository, so a second run is a no-op.
#
#   scripts/setup.sh            packages + llama.cpp + default model (qwen2.5-coder-0.5b)
#   scripts/setup.sh --no-apt   skip the Debian packages (you installed them yourself)
#   scripts/setup.sh --cuda     build llama.cpp with CUDA as well (separate cache entry)
#   scripts/setup.sh --server   build llama-server too (the remote-backend tests need it; ~20 min once)
#
# Environment: POWERSAMPLE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/powersample).
set -euo pipefail

LLAMA_PY_VERSION=0.3.36
LLAMA_PY_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

cache=${POWERSAMPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powersample}
want_apt=1
want_cuda=0
want_server=0
for arg in "$@"; do
  case "$arg" in
    --no-apt) want_apt=0 ;;
    --cuda) want_cuda=1 ;;
    --server) want_server=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; exit 1 ;;
  esac
done

log() { echo "setup: $*" >&2; }

if [ "$want_apt" = 1 ]; then
  # bubblewrap: the HumanEval sandbox's filesystem view (tools/eval/README.md)
  packages="cmake ninja-build g++ git python3 python3-pip unzip libgtest-dev libgmock-dev
            libbenchmark-dev nlohmann-json3-dev libcli11-dev libfmt-dev libcpp-httplib-dev
            zlib1g-dev bubblewrap"
  missing=""
  for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "installing Debian packages:$missing"
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing >/dev/null
  fi
fi

pip_cmd() { if command -v pip3 >/dev/null; then pip3 "$@"; else python3 -m pip "$@"; fi; }

# fetch NAME VERSION SHA256 KIND -> prints the path of the verified download
fetch() {
  local name=$1 version=$2 sha=$3 kind=$4 dir="$cache/downloads"
  mkdir -p "$dir"
  local found
  found=$(ls "$dir"/"$(echo "$name" | tr - _)"-"$version"* 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    log "downloading $name==$version from PyPI"
    if [ "$kind" = sdist ]; then
      pip_cmd download -q --no-binary :all: --no-deps -d "$dir" "$name==$version" >&2
    else
      pip_cmd download -q --no-deps -d "$dir" "$name==$version" >&2
    fi
    found=$(ls "$dir"/"$(echo "$name" | tr - _)"-"$version"* | head -n1)
  fi
  if ! echo "$sha  $found" | sha256sum -c --status; then
    echo "setup.sh: sha256 mismatch for $found (expected $sha); delete it and rerun" >&2
    exit 2
  fi
  echo "$found"
}

# -march=native, less AMX: on this project's machines (Sapphire Rapids VMs) the CPU reports AMX and
# a bare AMX probe runs, yet this llama.cpp's AMX matmul kernels die with SIGILL (tilezero in
# tinygemm_kernel_amx, seen 2026-12-07). An explicit -mno-* wins over -march=native in GCC.
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

build_llama() {
  local variant=$1 extra=$2
  local prefix="$cache/llama.cpp-$LLAMA_PY_VERSION-$variant"
  # The marker names the build recipe: a changed recipe rebuilds the cache entry.
  local marker="$prefix/.complete-r3"
  if [ -f "$marker" ]; then log "llama.cpp ($variant) already built in $prefix"; return; fi
  local sdist src
  sdist=$(fetch llama-cpp-python "$LLAMA_PY_VERSION" "$LLAMA_PY_SHA256" sdist)
  src="$cache/src/llama_cpp_python-$LLAMA_PY_VERSION"
  if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
    mkdir -p "$cache/src"
    tar -xzf "$sdist" -C "$cache/src"
  fi
  log "building llama.cpp ($variant); this takes a few minutes once"
  cmake -S "$src/vendor/llama.cpp" -B "$prefix/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
    -DCMAKE_INSTALL_RPATH='$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=OFF $extra >&2
  cmake --build "$prefix/build" -j "$(nproc)" >&2
  cmake --install "$prefix/build" >&2
  touch "$marker"
}

build_llama cpu ""
# CUDA build: Hopper (sm_90, the H100/H200 the project's GPU checks run on; override with
# CUDAARCHS), CPU code not tuned to this machine (the GPU machine is another CPU), no NCCL.
[ "$want_cuda" = 1 ] && build_llama cuda "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDAARCHS:-90} -DGGML_NATIVE=OFF -DGGML_CUDA_NCCL=OFF"

# llama-server from the same source, for the remote-backend tests (test-remote-llama-server): a separate,
# static build of that one target, cached with its own marker. No network: the web UI is neither
# downloaded nor built.
build_llama_server() {
  local prefix="$cache/llama-server-$LLAMA_PY_VERSION-cpu"
  local marker="$prefix/.complete-r2"
  if [ -f "$marker" ]; then log "llama-server already built in $prefix"; return; fi
  local src="$cache/src/llama_cpp_python-$LLAMA_PY_VERSION/vendor/llama.cpp"
  if [ ! -f "$src/CMakeLists.txt" ]; then
    local sdist
    sdist=$(fetch llama-cpp-python "$LLAMA_PY_VERSION" "$LLAMA_PY_SHA256" sdist)
    mkdir -p "$cache/src"
    tar -xzf "$sdist" -C "$cache/src"
  fi
  log "building llama-server; this takes several minutes once"
  cmake -S "$src" -B "$prefix/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
    -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" >&2
  nice cmake --build "$prefix/build" --target llama-server -j "$(nproc)" >&2
  mkdir -p "$prefix/bin"
  cp "$prefix/build/bin/llama-server" "$prefix/bin/llama-server"
  touch "$marker"
}
[ "$want_server" = 1 ] && build_llama_server

# The default model (src/llama/model-catalog.cpp); scripts/fetch-model.sh holds the pinned wheels.
"$(dirname "$0")/fetch-model.sh" qwen2.5-coder-0.5b
log "ready: llama.cpp in $cache/llama.cpp-$LLAMA_PY_VERSION-cpu, default model qwen2.5-coder-0.5b in $cache/models"
