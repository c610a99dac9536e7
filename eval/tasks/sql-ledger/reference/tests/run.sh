#!/bin/sh
# A quick check of ledger.sh: sh tests/run.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
L() { sh "$here/ledger.sh" "$tmp/t.db" "$@"; }
L init
L add 2024-01-01 cash 10.5 "it's" >/dev/null
L add 2024-01-02 cash -0.5 >/dev/null
[ "$(L balance)" = "$(printf 'cash\t10.00')" ] || { echo "FAIL balance: $(L balance)"; exit 1; }
if L add 2024-02-30 cash 1 2>/dev/null; then echo "FAIL: a bad date was accepted"; exit 1; fi
echo "ok"
