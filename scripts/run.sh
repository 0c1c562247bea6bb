#!/usr/bin/env bash
# One command from a fresh checkout to an answer: installs what is missing (scripts/setup.sh),
# builds (scripts/build.sh), then runs power-sampling with your arguments on the default model.
#   scripts/run.sh -p "What is 7 * 8?"
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/setup.sh" >&2
"$here/scripts/build.sh" build >&2
exec "$here/build/bin/power-sampling" "$@"
