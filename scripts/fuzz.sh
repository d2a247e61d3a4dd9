#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each (default 60s).
# New failing inputs land in the package's testdata/fuzz/ directory; commit them
# with the fix.
set -euo pipefail
fuzztime=${1:-60s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
