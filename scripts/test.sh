#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: setup, build, every CTest test (label "unit": the
# sampler core on an exact toy model; label "model": the real default model), then the unit
# tests again under AddressSanitizer and UndefinedBehaviorSanitizer. The Python package is
# installed and its pytest suite run in between.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --server
scripts/fetch-model.sh smollm2-135m   # the model tests' fast model (tests/model-fixture.h)
scripts/build.sh build
ctest --test-dir build --output-on-failure -j 2

echo "== Python package =="
scripts/test-python.sh

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer =="
scripts/build.sh build-sanitize -DPOWERSAMPLE_CORE_ONLY=ON -DPOWERSAMPLE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ctest --test-dir build-sanitize -L unit --output-on-failure -j 2
