#!/usr/bin/env bash
# The body of `make bench`: each part's benchmark script (bench/<part>.sh) runs
# the project's figures beside its reference from $ORCH_ANCHORS (default
# ../shared/anchors; see bench/anchors.sh) in this
# same invocation, prints a table with ratios, and writes build/bench/<part>.json.
#
#   BUILD=build BIN=bin/orchestrator bench/run.sh [PART...]
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build} BIN=${BIN:-bin/orchestrator}
# names this invocation: a reference run by one part is reused by another
export BENCH_RUN=${BENCH_RUN:-$(date +%s)-$$}
mkdir -p "$BUILD/bench"
parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then
	for s in bench/*.sh; do
		[ "$(basename "$s")" = run.sh ] || parts+=("$(basename "$s" .sh)")
	done
fi
status=0
for p in "${parts[@]}"; do
	echo "== $p"
	bash "bench/$p.sh" || { echo "bench $p failed"; status=1; }
	echo
done
exit $status
