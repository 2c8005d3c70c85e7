#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages,
# idempotent), builds libmagpage and its tests, and runs them all with ctest.
# usage: scripts/test.sh [CTEST-ARGS...]
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      any further arguments go to ctest
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cmake --build build -j"$(nproc)" --target fuzzers    # not in "all": test programs only
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
