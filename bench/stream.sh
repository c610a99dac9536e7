#!/usr/bin/env bash
# Stream delivery (engine/stream.h) beside LangGraph.js's phase I
# (../shared/anchors/langgraphjs, "I_streaming_custom_and_updates": a node
# emitting 200 custom events while the run streams updates and custom
# events), in this one `make bench` invocation: the reference's figures
# come from the run bench/engine.sh made of it (or, alone with
# `make bench B=stream`, from a shorter run of it made here: its phase I
# is the same). orchestrator runs on the reference's PostgreSQL server when
# it is up (else a private one), with a private Redis, and the fake model
# server for the LLM layer's tokens. Writes build/bench/stream.json.
#
# Knobs: N_TOK, N_STREAM (50), N_STREAM_SEQ (20), N_LLM_TOK, N_SEQ (200:
# the overhead invocations), N_TRANSPORT (20000), SKIP_REF=1.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out=$BUILD/bench
. bench/anchors.sh
anchor=$ANCHORS/langgraphjs
mkdir -p "$out"
ref_json=$out/ref_langgraphjs.json

export PGPORT=${PGPORT:-55432}
if [ -n "${BENCH_RUN:-}" ] && [ -s "$ref_json" ] &&
	[ "$(cat "$out/ref_langgraphjs.run" 2>/dev/null)" = "$BENCH_RUN" ]; then
	echo "the reference ran in this invocation (bench/engine.sh): its phase I is used"
elif ref_ready langgraphjs; then
	echo "running the reference (LangGraph.js, shortened: its phase I as in a full run); log in $out/ref_langgraphjs_stream.log"
	ref_json=$out/ref_langgraphjs_stream.json
	(cd "$anchor" && N_SEQ=20 N_WARM=5 CONC_ROUNDS=1 N_INTR=10 ./run.sh) >"$ref_json" \
		2>"$out/ref_langgraphjs_stream.log" || echo "the reference failed; see $out/ref_langgraphjs_stream.log"
else
	ref_json=/nonexistent
fi

# a private Redis (and PostgreSQL, used when the reference's is not up)
port=25700
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; do
	port=$((port + 1))
done
tests/env/services.sh start --dir "$out/stream-services" --pg-port "$port" --redis-port $((port + 10000)) >/dev/null || exit 1
fake_pid=
cleanup() {
	[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
	tests/env/services.sh stop --dir "$out/stream-services" >/dev/null 2>&1
}
trap cleanup EXIT
if pg_isready -q -h 127.0.0.1 -p "$PGPORT" 2>/dev/null && [ -s "$ref_json" ]; then
	db_base="postgresql://postgres@127.0.0.1:$PGPORT"
else
	db_base="postgresql://orchestrator@127.0.0.1:$port"
fi
PGOPTIONS="-c client_min_messages=warning" psql -q "$db_base/postgres" \
	-c "DROP DATABASE IF EXISTS orchstream WITH (FORCE)" -c "CREATE DATABASE orchstream" || exit 1
DATABASE_URL="$db_base/orchstream" ORCH_LOG_LEVEL=warn "$BIN" migrate >/dev/null || exit 1
psql -q "$db_base/orchstream" -c "CHECKPOINT" >/dev/null 2>&1

"$BUILD/tests/progs/fake_openai" >"$out/fake_openai.out" 2>/dev/null &
fake_pid=$!
for _ in $(seq 100); do [ -s "$out/fake_openai.out" ] && break; sleep 0.05; done
llm_port=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$out/fake_openai.out")

echo "running orchestrator's stream benchmark"
DATABASE_URL="$db_base/orchstream" REDIS_URL="redis://127.0.0.1:$((port + 10000))/0" \
	FAKE_LLM_URL="http://127.0.0.1:$llm_port" "$BUILD/bench/stream" >"$out/stream_raw.json" || exit 1

python3 - "$out/stream_raw.json" "$ref_json" "$out/stream.json" <<'PY'
import sys
sys.path.insert(0, "bench")
from benchlib import load, dig, table, write

ours, ref, dest = load(sys.argv[1]), load(sys.argv[2]) or {}, sys.argv[3]
I = "I_streaming_custom_and_updates"
res = dict(ours)
res.update({
    "ref_sequential_events_per_s": dig(ref, I, "sequential_events_per_s"),
    "ref_concurrent_events_per_s": dig(ref, I, "concurrent_events_per_s"),
    "ref_emit_to_consumer_median_ms": dig(ref, I, "emit_to_consumer_ms", "median_ms"),
    "ref_emit_to_consumer_p99_ms": dig(ref, I, "emit_to_consumer_ms", "p99_ms"),
    "ref_run_wall_median_ms": dig(ref, I, "run_wall", "median_ms"),
    "ref_concurrent_streams": dig(ref, I, "concurrent_streams"),
})
write(dest, res)
r = res
ref_eps, ref_lat = r["ref_sequential_events_per_s"], r["ref_emit_to_consumer_median_ms"]
ref_ceps = r["ref_concurrent_events_per_s"]
t = lambda ref, f: None if ref is None else ref * f
for where in ("inproc", "redis"):
    o = r[where]
    table("stream delivery, %s: a node emits %d custom events while the run streams updates and custom events "
          "(reference: LangGraph.js phase I, in its own process)"
          % ("in this process (the subscriber's hub is the engine's sink)" if where == "inproc"
             else "through Redis pub/sub (another hub subscribes, as a chat or bot process does)",
             r["tokens_per_run"]), [
        ("sequential, events/s", o["sequential_events_per_s"], ref_eps, "/s", "higher", t(ref_eps, 10)),
        ("emit to consumer, median", o["emit_to_consumer_median_ms"], ref_lat, "ms", "lower", t(ref_lat, 0.1)),
        ("emit to consumer, p99", o["emit_to_consumer_p99_ms"], r["ref_emit_to_consumer_p99_ms"], "ms", "lower", None),
        ("one run (200 events), median", o["run_wall_median_ms"], r["ref_run_wall_median_ms"], "ms", "lower", None),
        ("%d concurrent, events/s" % r["concurrent_streams"], o["concurrent_events_per_s"], ref_ceps, "/s", "higher", t(ref_ceps, 10)),
        ("%d concurrent, latency median" % r["concurrent_streams"], o["concurrent_median_ms"], None, "ms", "lower", None),
        ("%d concurrent, latency p99" % r["concurrent_streams"], o["concurrent_p99_ms"], None, "ms", "lower", None),
    ])
l = r["llm_tokens"]
table("a model's tokens (fake model, %d chunks 1 ms apart) from the LLM layer to a subscriber" % l["tokens_per_call"], [
    ("added latency per token, in-process median", l["inproc_median_ms"], None, "ms", "lower", None),
    ("added latency per token, in-process p99", l["inproc_p99_ms"], None, "ms", "lower", None),
    ("added latency per token, via Redis median", l["redis_median_ms"], None, "ms", "lower", None),
    ("added latency per token, via Redis p99", l["redis_p99_ms"], None, "ms", "lower", None),
])
o = r["overhead"]
table("the cost of streaming to an invocation (4-step graph, invocations alternated, medians)", [
    ("streaming off", o["invocation_off_median_ms"], None, "ms", "lower", None),
    ("streaming on (subscriber + Redis)", o["invocation_on_median_ms"], o["invocation_off_median_ms"], "ms", "lower", None),
])
p = r["transport"]
table("between processes: %d events of ~300 bytes, Redis pub/sub vs PostgreSQL NOTIFY (the reference column is NOTIFY)" % p["events"], [
    ("burst, events/s", p["redis_burst_per_s"], p["pg_notify_burst_per_s"], "/s", "higher", None),
    ("one per ms, latency median", p["redis_paced_median_ms"], p["pg_notify_paced_median_ms"], "ms", "lower", None),
    ("one per ms, latency p99", p["redis_paced_p99_ms"], p["pg_notify_paced_p99_ms"], "ms", "lower", None),
])
print(f"  wrote {dest}")
PY
