#!/usr/bin/env bash
# Builds and installs the Python package from this checkout, then runs its tests on the default
# model. Needs what scripts/setup.sh provides (the pinned llama.cpp and SmolLM2-135M in the cache);
# pip fetches the build tools (scikit-build-core, nanobind) into an isolated build environment.
#   scripts/test-python.sh [pytest arguments...]
# PYTHON selects the interpreter (default: python3). Exits non-zero when a step or a test fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

"$python" -m pip install --quiet "$root"
"$python" -m pip install --quiet "pytest>=7"
# From outside the checkout, so that `import powersample` finds the installed package, not
# python/powersample (which has no compiled extension).
cd "$root/python/tests"
exec "$python" -m pytest -q "$@" .
