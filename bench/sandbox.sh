#!/usr/bin/env bash
# Sandbox benchmark (run by bench/run.sh): start-to-exit of /bin/true in a
# sandbox beside plain fork+exec and `unshare -Urpfn` measured in the same
# run, then 20 concurrent sandboxes compiling a C program. Needs root.
# Writes $BUILD/bench/sandbox.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ "$(id -u)" != 0 ]; then
	echo "the sandbox benchmark needs root (the ns backend maps uids and creates cgroups)"
	exit 1
fi
make --no-print-directory -s "$BUILD/bench/sandbox" >/dev/null
mkdir -p "$BUILD/bench"
"$BUILD/bench/sandbox" --runs "${SBX_RUNS:-200}" --concurrent "${SBX_CONCURRENT:-20}" \
	--json "$BUILD/bench/sandbox.json"
echo "wrote $BUILD/bench/sandbox.json"
