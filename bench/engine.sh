#!/usr/bin/env bash
# Engine benchmark beside LangGraph.js + PostgresSaver (../shared/anchors/langgraphjs),
# both on the same PostgreSQL server (the reference's private cluster on
# 127.0.0.1:55432, default durability), in this one invocation.
# Writes build/bench/engine.json; the reference's raw output is kept beside it.
#
# Knobs: N_SEQ, N_WARM, N_CONC, CONC_ROUNDS, N_INTR (both sides), ENGINE_THREADS, SCRAPE_ROUNDS,
# SKIP_REF=1 to measure only orchestrator (then on a private server).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin/orchestrator}
out=$BUILD/bench
. bench/anchors.sh
anchor=$ANCHORS/langgraphjs
mkdir -p "$out"
ref_json=$out/ref_langgraphjs.json
rm -f "$ref_json"

export PGPORT=${PGPORT:-55432}
pg_base="postgresql://postgres@127.0.0.1:$PGPORT"
if ref_ready langgraphjs; then
	echo "running the reference (LangGraph.js + PostgresSaver); log in $out/ref_langgraphjs.log"
	(cd "$anchor" && ./run.sh) >"$ref_json" 2>"$out/ref_langgraphjs.log" ||
		echo "the reference failed; see $out/ref_langgraphjs.log"
fi

# orchestrator on the same server when the reference started it, else on a private one
if pg_isready -q -h 127.0.0.1 -p "$PGPORT" 2>/dev/null && [ -s "$ref_json" ]; then
	db_base=$pg_base
else
	port=25500
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
	tests/env/services.sh start --dir "$out/services" --pg-port "$port" --redis-port $((port + 10000)) >/dev/null
	trap 'tests/env/services.sh stop --dir "$out/services" >/dev/null 2>&1' EXIT
	db_base="postgresql://orchestrator@127.0.0.1:$port"
fi
PGOPTIONS="-c client_min_messages=warning" psql -q "$db_base/postgres" \
	-c "DROP DATABASE IF EXISTS orchbench WITH (FORCE)" -c "CREATE DATABASE orchbench" || exit 1
DATABASE_URL="$db_base/orchbench" ORCH_LOG_LEVEL=warn "$BIN" migrate >/dev/null || exit 1
# the reference left dirty pages and WAL behind: write them out first, so its
# aftermath does not land on our measurement
psql -q "$db_base/orchbench" -c "CHECKPOINT" >/dev/null 2>&1
sleep 1
echo "running orchestrator's engine benchmark"
DATABASE_URL="$db_base/orchbench" "$BUILD/bench/engine" >"$out/engine_raw.json" || exit 1

python3 - "$out/engine_raw.json" "$ref_json" "$out/engine.json" <<'EOF'
import sys
sys.path.insert(0, "bench")
from benchlib import load, dig, table, write

ours, ref, dest = load(sys.argv[1]), load(sys.argv[2]) or {}, sys.argv[3]
A = "A_postgres_seq_durability_sync"
h_first = dig(ref, "H_postgres_same_thread_many_turns", "first20_turns", "median_ms")
h_last = dig(ref, "H_postgres_same_thread_many_turns", "last20_turns", "median_ms")
res = dict(ours)
res.update({
    "ref_invocation_median_ms": dig(ref, A, "per_invocation", "median_ms"),
    "ref_invocation_p99_ms": dig(ref, A, "per_invocation", "p99_ms"),
    "ref_invocation_median_ms_async": dig(ref, "A_postgres_seq_durability_async", "per_invocation", "median_ms"),
    "ref_sql_per_invocation": dig(ref, A, "sql_round_trips_per_invocation", "total"),
    "ref_tx_per_invocation": dig(ref, A, "sql_round_trips_per_invocation", "commit"),
    "ref_concurrent50_per_s": dig(ref, "C_postgres_concurrent_pool10", "throughput_invocations_per_s"),
    "ref_concurrent50_per_s_pool50": dig(ref, "C_postgres_concurrent_pool50", "throughput_invocations_per_s"),
    "ref_turn200_over_turn1": (h_last / h_first) if h_first and h_last else None,
    "ref_resume_median_ms": dig(ref, "F_interrupt_resume_postgres", "resume_Command", "median_ms"),
    "ref_peak_rss_mib": dig(ref, "D_mem_at_end", "rss_MiB"),
})
write(dest, res)
r = res
table("engine: 4-step graph on PostgreSQL, default durability (reference: LangGraph.js PostgresSaver, durability sync)", [
    ("one invocation, median", r["invocation_median_ms"], r["ref_invocation_median_ms"], "ms", "lower", 1.0),
    ("one invocation, p99", r["invocation_p99_ms"], r["ref_invocation_p99_ms"], "ms", "lower", None),
    ("one invocation, durability async", r["invocation_median_ms_async"], r["ref_invocation_median_ms_async"], "ms", "lower", None),
    ("SQL statements per invocation", r["sql_per_invocation"], r["ref_sql_per_invocation"], "", "lower", None),
    ("transactions per invocation", r["tx_per_invocation"], r["ref_tx_per_invocation"], "", "lower", None),
    ("50 concurrent, invocations/s", r["concurrent50_per_s"], r["ref_concurrent50_per_s"], "/s", "higher", 2000),
    ("one thread: turns 181-200 / 1-20", r["turn200_over_turn1"], r["ref_turn200_over_turn1"], "", "lower", 1.2),
    ("interrupt then resume, median", r["resume_median_ms"], r["ref_resume_median_ms"], "ms", "lower", 0.5),
    ("peak RSS", r["peak_rss_mib"], r["ref_peak_rss_mib"], "MiB", "lower", 20),
])
print(f"  (async: ORCH_DURABILITY=async and LangGraph's durability \"async\"; reference "
      f"50 concurrent with a pool of 50: {r['ref_concurrent50_per_s_pool50']} /s; "
      f"orchestrator ran {r['engine_threads']} engine threads)")
if r.get("scrape_bytes"):
    print(f"  /metrics while the engine runs: a scrape renders {r['scrape_bytes'] / 1024:.1f} KiB in "
          f"{r['scrape_render_us']:.0f} us and costs {r['scrape_cpu_us']:.0f} us of CPU with HTTP, both ends "
          f"(over loopback {r['scrape_http_median_ms']:.2f} ms median, p99 {r['scrape_http_p99_ms']:.2f} ms; "
          f"{r['scrapes_loop']} scrapes in a loop)")
    off, s100, loop = (r["concurrent50_per_s_no_scraper"], r["concurrent50_per_s_scrape_100ms"],
                       r["concurrent50_per_s_scrape_loop"])
    print(f"  50 concurrent: {off:.0f}/s without a scraper, {s100:.0f}/s scraped every 100 ms "
          f"({r['concurrent50_ratio_scrape_100ms']:.2f}x), {loop:.0f}/s scraped in a loop "
          f"({r['concurrent50_ratio_scrape_loop']:.2f}x; ratios: median of each round over its "
          f"neighbour without a scraper); one invocation "
          f"{r['invocation_median_ms_no_scraper']:.2f} / {r['invocation_median_ms_scrape_100ms']:.2f} / "
          f"{r['invocation_median_ms_scrape_loop']:.2f} ms (alternating rounds, medians)")
print(f"  wrote {dest}")
EOF
