#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: setup, build, every CTest test (label "unit": the
# sampler core on an exact toy model; label "model": the real default model), then the unit
# tests again under AddressSanitizer and UndefinedBehaviorSanitizer (all of them: core, remote,
# server, eval). The Python package is
# installed and its pytest suite run in between.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --server
scripts/fetch-model.sh smollm2-135m   # the model tests' fast model (tests/model-fixture.h)

# The official OpenAI SDK for tests/server/test_server_openai.py, pinned, in a virtual environment
# in the cache (remade when the pins change).
cache=${POWERSAMPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powersample}
venv="$cache/openai-venv"
if ! cmp -s tests/server/openai-requirements.txt "$venv/requirements.txt"; then
  echo "== OpenAI SDK virtual environment =="
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-deps -r tests/server/openai-requirements.txt
  cp tests/server/openai-requirements.txt "$venv/requirements.txt"
fi
scripts/build.sh build
ctest --test-dir build --output-on-failure -j 2

echo "== a downstream program against the installed library (find_package(powersample)) =="
rm -rf build/install-tree build/downstream
cmake --install build --prefix build/install-tree --component dev >/dev/null
cmake -S tests/downstream -B build/downstream -G Ninja \
  -DCMAKE_PREFIX_PATH="$PWD/build/install-tree;$cache/llama.cpp-0.3.36-cpu" >/dev/null
cmake --build build/downstream
answer=$(build/downstream/downstream 2>/dev/null)
echo "downstream: $answer"
case "$answer" in *56*) ;; *) echo "downstream: expected 56 in the answer" >&2; exit 1 ;; esac

echo "== Python package =="
scripts/test-python.sh

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer =="
# The whole library and every tool, not only the core: the remote clients, the server's request
# parsing and the eval's graders and command line run sanitized too (llama.cpp itself is not).
scripts/build.sh build-sanitize -DPOWERSAMPLE_CORE_ONLY=OFF -DPOWERSAMPLE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ctest --test-dir build-sanitize -L unit --output-on-failure -j 2
