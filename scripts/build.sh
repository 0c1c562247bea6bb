#!/usr/bin/env bash
# Builds powersample against the cached llama.cpp (scripts/setup.sh makes it).
#   scripts/build.sh [BUILD_DIR] [extra cmake args...]      default BUILD_DIR: build
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${POWERSAMPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powersample}
build_dir=${1:-build}
shift || true
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_PREFIX_PATH="$cache/llama.cpp-0.3.36-cpu" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
