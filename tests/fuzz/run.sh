#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang under ASan
# and UBSan, and runs each for FUZZ_SECONDS over its seed corpus
# (tests/fuzz/corpus/NAME/). Prints, per target, the inputs run and the
# findings; a finding's input is saved under build/fuzz/findings/NAME/.
#
#   tests/fuzz/run.sh [--tap] [NAME...]        (make fuzz, make test)
#
# --tap speaks TAP for tests/run.py and starts from the seeds alone each
# time; without it the inputs libFuzzer finds interesting are kept in
# build/fuzz/corpus/NAME/ and the next run goes on from them.
# Variables: FUZZ_SECONDS (60), FUZZ_TIMEOUT (seconds one input may take,
# 20), FUZZ_BUILD (build/fuzz), FUZZ_CC (clang).
set -u
cd "$(dirname "$0")/../.."
tap=0
names=()
for a in "$@"; do
	case $a in
	--tap) tap=1 ;;
	*) names+=("$a") ;;
	esac
done
SECONDS_EACH=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-20}
FB=${FUZZ_BUILD:-build/fuzz}
FCC=${FUZZ_CC:-clang}
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
n=0
failed=0

say_skip() {
	echo "skipped: $1"
	if [ $tap = 1 ]; then
		echo "1..1"
		echo "ok 1 - fuzz targets # SKIP $1"
	fi
	exit 0
}

# libFuzzer comes with clang's compiler runtime (Debian: clang, libclang-rt-dev)
command -v "$FCC" >/dev/null 2>&1 ||
	say_skip "no $FCC to build the libFuzzer targets (Debian: apt-get install clang libclang-rt-dev)"
mkdir -p "$FB"
probe=$FB/probe
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
"$FCC" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1 ||
	say_skip "$FCC cannot link -fsanitize=fuzzer,address,undefined (Debian: apt-get install libclang-rt-dev): $(head -c 300 "$probe.log")"

# every target unless names were given (a name picks the targets holding it)
targets=()
for src in tests/fuzz/fuzz_*.c; do
	t=$(basename "$src" .c)
	if [ ${#names[@]} -gt 0 ]; then
		keep=0
		for w in "${names[@]}"; do
			case $t in *"$w"*) keep=1 ;; esac
		done
		[ $keep = 1 ] || continue
	fi
	targets+=("$t")
done
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz target matches: ${names[*]}" >&2; exit 1; }

[ $tap = 1 ] && echo "1..$((${#targets[@]} + 1))"
bins=()
for t in "${targets[@]}"; do bins+=("$FB/fuzz/$t"); done
if ! out=$(make --no-print-directory BUILD="$FB" CC="$FCC" OPT=-O1 SAN="$SAN" "${bins[@]}" 2>&1); then
	if [ $tap = 1 ]; then
		echo "not ok 1 - the fuzz targets build with $FCC"
		echo "$out" | tail -40 | sed 's/^/# /'
		exit 1
	fi
	echo "$out" | tail -40
	echo "the fuzz targets do not build" >&2
	exit 1
fi
[ $tap = 1 ] && echo "ok 1 - the fuzz targets build with $FCC" && n=1

total_runs=0
total_findings=0
printf '%-22s %12s %8s  %s\n' target "inputs run" "new" findings
for t in "${targets[@]}"; do
	name=${t#fuzz_}
	seeds=tests/fuzz/corpus/$name
	findings=$FB/findings/$name
	log=$FB/logs/$t.log
	if [ $tap = 1 ]; then
		work=$FB/work/$name
		rm -rf "$work"
	else
		work=$FB/corpus/$name
	fi
	mkdir -p "$work" "$findings" "$(dirname "$log")"
	args=(-max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb=2560
		-print_final_stats=1 -artifact_prefix="$findings/")
	[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
	dirs=("$work")
	[ -d "$seeds" ] && dirs+=("$seeds")
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		timeout -k 10 $((SECONDS_EACH + TIMEOUT * 3 + 120)) "$FB/fuzz/$t" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
	runs=${runs:-0}
	added=${added:-0}
	total_runs=$((total_runs + runs))
	n=$((n + 1))
	if [ $rc = 0 ]; then
		printf '%-22s %12s %8s  %s\n' "$t" "$runs" "$added" none
		[ $tap = 1 ] && echo "ok $n - $t: $runs inputs, no finding"
		continue
	fi
	failed=$((failed + 1))
	total_findings=$((total_findings + 1))
	saved=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	why=$(grep -m1 -E 'ERROR: |runtime error: |FUZZ CHECK|SUMMARY: |deadly signal|timeout after' "$log")
	[ -n "$why" ] || why="exited with status $rc"
	printf '%-22s %12s %8s  %s\n' "$t" "$runs" "$added" "1: $why"
	echo "    input: ${saved:-(not saved)}; whole report: $log"
	if [ $tap = 1 ]; then
		echo "not ok $n - $t: a finding after $runs inputs"
		echo "# $why"
		echo "# the input: ${saved:-(not saved)}; reproduce: $FB/fuzz/$t ${saved:-INPUT}"
		grep -E 'FUZZ CHECK|ERROR: |runtime error: |#[0-9]+ 0x' "$log" | head -25 | sed 's/^/# /'
	fi
done
echo "total: ${#targets[@]} targets, $total_runs inputs run, $total_findings findings"
[ $failed = 0 ]
