#!/usr/bin/env bash
# Egress proxy benchmark (run by bench/run.sh): connections per second and the
# time added per connection and per round trip through the proxy, beside direct
# loopback connections measured in the same run. Needs root (/run/orch-egress).
# Writes $BUILD/bench/egress.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make --no-print-directory -s "$BUILD/bench/egress" >/dev/null
mkdir -p "$BUILD/bench"
"$BUILD/bench/egress" --conns "${EGRESS_CONNS:-2000}" --trips "${EGRESS_TRIPS:-5000}" \
	--json "$BUILD/bench/egress.json"
echo "wrote $BUILD/bench/egress.json"
