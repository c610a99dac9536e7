#!/usr/bin/env bash
# LLM client overhead: bench/llm.c (our client against the fake OpenAI-compatible
# server on loopback) beside the openai-node reference from ../shared/anchors,
# run in this same invocation. Prints a table with ratios and writes
# $BUILD/bench/llm.json.
#
# Knobs: N_SEQ, N_CONC, N_STREAM, CONC (both sides); REF_CLIENTS (undici,openai);
# LLM_BENCH_NO_REF=1 skips the reference.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out_dir="$BUILD/bench"
mkdir -p "$out_dir"
export N_WARM=${N_WARM:-1000} N_SEQ=${N_SEQ:-3000} N_CONC=${N_CONC:-20000} N_STREAM=${N_STREAM:-5000} CONC=${CONC:-64}

ours="$out_dir/llm.ours.json"
ref="$out_dir/llm.ref.json"
rm -f "$ours" "$ref"
echo "orchestrator llm client: $N_SEQ sequential pairs, $N_CONC requests and $N_STREAM streams at $CONC in flight" >&2
if ! BUILD="$BUILD" "$BUILD/bench/llm" >"$ours"; then
	echo "bench/llm failed" >&2
	exit 1
fi

. bench/anchors.sh
anchor=$ANCHORS/openai-node
[ "${LLM_BENCH_NO_REF:-0}" = 1 ] && SKIP_REF=1
if ref_ready openai-node >&2; then
	echo "reference: openai-node ($anchor), clients ${REF_CLIENTS:-undici,openai}" >&2
	(cd "$anchor" && CLIENTS=${REF_CLIENTS:-undici,openai} ./run.sh) >"$ref" 2>"$out_dir/llm.ref.log" || {
		echo "the reference run failed (see $out_dir/llm.ref.log); our figures alone" >&2
		rm -f "$ref"
	}
fi

python3 - "$ours" "$ref" "$out_dir/llm.json" <<'PY'
import json, os, sys
ours = json.load(open(sys.argv[1]))
ref = None
if os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2]) > 0:
    try:
        ref = json.load(open(sys.argv[2]))
    except ValueError:
        ref = None

def r(key):
    return None if ref is None else ref.get(key)

rows = [
    # label, ours, reference, higher is better
    ("requests/s, 64 in flight (rps_64)", ours["rps_64"], r("rps_64_openai"), True),
    ("added latency ms (added_latency_ms)", ours["added_latency_ms"], r("added_latency_ms"), False),
    ("streams/s, 64 in flight", ours["stream_rps_64"], r("stream_rps_64_openai"), True),
    ("median ms, sequential", ours["median_ms"], r("median_ms_openai"), False),
    ("client CPU us/request, 64 in flight", ours["client_cpu_us_per_req"], r("client_cpu_us_per_req_openai"), False),
    ("client CPU us/stream, 64 in flight", ours["stream_client_cpu_us_per_req"], r("stream_client_cpu_us_per_req_openai"), False),
    ("bare requests/s (curl | undici)", ours["rps_64_bare"], r("rps_64_bare"), True),
    ("bare median ms (curl | undici)", ours["median_ms_bare"], r("median_ms_bare"), False),
]

def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3f}"

print(f"{'figure':<40} {'orchestrator':>14} {'openai-node':>14} {'ratio':>12}")
ratios = {}
for label, a, b, higher in rows:
    ratio = "-"
    if b not in (None, 0) and a not in (None, 0):
        x = a / b if higher else b / a
        ratio = f"{x:.1f}x " + ("faster" if higher else "less")
        ratios[label] = round(x, 2)
    print(f"{label:<40} {fmt(a):>14} {fmt(b):>14} {ratio:>12}")
targets = {
    "rps_64 >= 5000": ours["rps_64"] >= 5000,
    "added_latency_ms <= 0.2": ours["added_latency_ms"] <= 0.2,
}
print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
print("note: client and fake server share this machine's cores; the reference's server is its own Node fake")
json.dump({"rps_64": ours["rps_64"], "added_latency_ms": ours["added_latency_ms"],
           "orchestrator": ours, "reference": ref, "ratios": ratios, "targets": targets},
          open(sys.argv[3], "w"), indent=2)
print(f"written: {sys.argv[3]}")
PY
