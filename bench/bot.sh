#!/usr/bin/env bash
# Bot ingestion benchmark: updates per second from the fake Bot API server
# into stored updates and the runs they start (bench/bot.c), beside the
# grammY + PostgreSQL reference ($ORCH_ANCHORS or ../shared/anchors, grammy) run in the same
# invocation. Writes $BUILD/bench/bot.json and prints both with ratios.
#
#   BUILD=build BIN=bin/orchestrator bench/bot.sh
#
# N_UPDATES (20000) sizes both runs; BENCH_PG_PORT / BENCH_REDIS_PORT choose
# where the search for free ports for the private services starts.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin/orchestrator}
N=${N_UPDATES:-20000}
svc=$BUILD/bench-services
out=$BUILD/bench/bot.json
mkdir -p "$BUILD/bench"

pick_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
stop_services() { tests/env/services.sh stop --dir "$svc" >/dev/null 2>&1 || true; }
trap stop_services EXIT

for f in "$BIN" "$BUILD/bench/bot" "$BUILD/tests/progs/fake_telegram"; do
	[ -x "$f" ] || { echo "missing $f: run 'make bench'"; exit 1; }
done
stop_services
rm -rf "$svc"
pg_port=$(pick_port "${BENCH_PG_PORT:-${TEST_PG_PORT:-55460}}")
redis_port=$(pick_port "${BENCH_REDIS_PORT:-${TEST_REDIS_PORT_BASE:-64460}}")
tests/env/services.sh start --dir "$svc" --pg-port "$pg_port" --redis-port "$redis_port" >/dev/null || {
	echo "could not start PostgreSQL for the benchmark"
	exit 1
}
url="postgresql://orchestrator@127.0.0.1:$pg_port/orchestrator"
DATABASE_URL=$url ORCH_LOG_LEVEL=warn "$BIN" migrate >/dev/null || exit 1

echo "orchestrator: $N updates, batches of 100, one transaction per batch (PostgreSQL fsync on)"
DATABASE_URL=$url ORCH_BUILD=$BUILD "$BUILD/bench/bot" "$N" >"$out" || {
	echo "bench/bot failed"
	exit 1
}
cat "$out"

ref=$BUILD/bench/grammy.json
. bench/anchors.sh
echo "reference: grammY bot.start() + one INSERT per update ($ANCHORS/grammy)"
if ref_ready grammy; then
	(cd "$ANCHORS/grammy" && N_UPDATES=$N MODES=start:pg PG_FLOOR=0 ./run.sh) \
		>"$ref" 2>"$BUILD/bench/grammy.log" || {
		echo "(the reference did not run; see $BUILD/bench/grammy.log)"
		: >"$ref"
	}
else
	: >"$ref"
fi

python3 - "$out" "$ref" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
try:
    ref = json.load(open(sys.argv[2]))
except Exception:
    ref = {}
rows = [
    ("updates stored per second", ours.get("updates_per_s"), ref.get("updates_per_s_pg"), "higher"),
    ("peak RSS, MiB", ours.get("peak_rss_mib"), ref.get("peak_rss_mib"), "lower"),
]
print()
print("%-28s %14s %14s %10s" % ("figure", "orchestrator", "grammY+pg", "ratio"))
for name, a, b, better in rows:
    ratio = ""
    if a and b:
        r = a / b if better == "higher" else b / a
        ratio = "%.2fx" % r
    fa = "-" if a is None else ("%.0f" % a if a >= 100 else "%.1f" % a)
    fb = "-" if b is None else ("%.0f" % b if b >= 100 else "%.1f" % b)
    print("%-28s %14s %14s %10s" % (name, fa, fb, ratio))
print("(ratio > 1: orchestrator is better; target >= 5,000 updates/s, the architecture aims at 20,000)")
if ref:
    ours["reference"] = {"grammy_updates_per_s_pg": ref.get("updates_per_s_pg"),
                         "grammy_peak_rss_mib": ref.get("peak_rss_mib")}
    if ref.get("updates_per_s_pg"):
        ours["ratio_updates_per_s"] = round(ours["updates_per_s"] / ref["updates_per_s_pg"], 2)
    json.dump(ours, open(sys.argv[1], "w"))
PY
