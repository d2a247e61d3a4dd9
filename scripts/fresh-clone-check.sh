#!/usr/bin/env bash
# fresh-clone-check: what a new user with nothing but Go gets.
#
# Clones the repository at HEAD (or the commit given as $1) into a temporary
# directory and there, with an empty GOPATH and module cache (modules come
# from the module proxy), GOFLAGS=-mod=mod, and a PATH holding only Go and
# the system's directories (no staticcheck or other tools from earlier
# installs), runs the README's `make test` up to the tests: `make lint`
# (gofmt, go vet, `go tool staticcheck`), then `make test` with
# TESTFLAGS=-run=^_, which builds every package and test with -race and runs
# none. It fails if a step fails or if the clone's go.mod or go.sum had to
# change (the committed ones must be complete).
#
# The build cache is the usual one, to save time; GOCACHE=$(mktemp -d)
# makes the run entirely cold.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$repo" rev-parse "${1:-HEAD}")
gobin=$(dirname "$(command -v go)")
work=$(mktemp -d)
# The module cache is read-only; go clean removes it.
trap 'GOMODCACHE="$work/gopath/pkg/mod" "$gobin/go" clean -modcache 2>/dev/null; rm -rf "$work"' EXIT

git clone -q --no-checkout "$repo" "$work/refuge"
git -C "$work/refuge" checkout -q --detach "$rev"
cd "$work/refuge"

export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOFLAGS=-mod=mod
export PATH="$gobin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
unset GOBIN

echo "== fresh clone of $rev in $work/refuge; GOPATH=$GOPATH (empty); $(go version)"
make lint
make test TESTFLAGS=-run=^_

if [ -n "$(git status --porcelain -- go.mod go.sum)" ]; then
  echo "fresh-clone-check: a clean clone had to change go.mod/go.sum (run go mod tidy and commit):" >&2
  git --no-pager diff -- go.mod go.sum >&2
  exit 1
fi
echo "== fresh-clone-check: ok (make lint passed; every package and test builds)"
