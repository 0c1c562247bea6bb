#!/usr/bin/env bash
# Builds powersample against llama.cpp with CUDA and runs power-sampling-bench with every layer
# on the GPU, in well under 5 minutes on one recent NVIDIA GPU (after the one-off llama.cpp CUDA
# build by setup.sh, which takes longer). Untested so far: no GPU machine was available when it
# was written; see docs/performance.md.
#
#   scripts/bench-gpu.sh [extra power-sampling-bench flags]    e.g. -o json
#
# Environment: POWERSAMPLE_CACHE (as setup.sh), BUILD_DIR (default build-cuda).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${POWERSAMPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powersample}
llama_cuda="$cache/llama.cpp-0.3.36-cuda"
build=${BUILD_DIR:-$root/build-cuda}

if [ ! -f "$llama_cuda/.complete-r2" ]; then
  echo "bench-gpu: building llama.cpp with CUDA into $llama_cuda (once)" >&2
  "$root/scripts/setup.sh" --cuda --no-apt >&2
fi

# The CUDA llama.cpp is a separate install prefix: point find_package(llama) at it.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$llama_cuda" -DPOWERSAMPLE_CUDA=ON -DPOWERSAMPLE_BUILD_TESTS=OFF >&2
cmake --build "$build" -j "$(nproc)" --target power-sampling-bench >&2

# Two repetitions: by estimate (135M model, ~2 ms a decode step, the sampler on the CPU) about
# 3-4 minutes in all, the 32-chain and prompt-1024 recompute cases the longest. The CPU-side sampler work
# (one logits row per chain per token) is what a GPU run mostly shows.
exec "$build/bin/power-sampling-bench" -ngl 99 -t "$(nproc)" -r 2 \
  --tests decode-limit,mcmc-single,recompute-speedup,batch-limit,chains-scaling,memory \
  --prompt-lengths 32,256,1024 --chains 1,2,4,8,16,32 "$@"
