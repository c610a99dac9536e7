#!/bin/sh
# Acceptance tests of chg-c-tally-options: builds with make, runs ./tally.
n=0
fails=0
tmp=${TMPDIR:-/tmp}/eval_hidden_tally.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

make tally >"$tmp/make.log" 2>&1 || {
	cat "$tmp/make.log"
	echo "FAIL: make tally did not succeed"
	exit 1
}

# expect NAME WANT: the output in $tmp/out is WANT (lines separated by |)
expect() {
	n=$((n + 1))
	got=$(tr '\n' '|' <"$tmp/out" | sed 's/|$//')
	if [ "$got" = "$2" ]; then
		echo "ok $n - $1"
	else
		fails=$((fails + 1))
		echo "FAIL $n - $1: got '$got', want '$2'"
	fi
}

printf 'Apple\napple\nAPPLE\nbanana\nBanana\ncherry\n' >"$tmp/fruit"
./tally -i "$tmp/fruit" >"$tmp/out"
expect "-i groups case variants, first spelling shown" "      3 Apple|      2 banana|      1 cherry"

./tally "$tmp/fruit" >"$tmp/out"
expect "without -i case matters" "      1 APPLE|      1 Apple|      1 Banana|      1 apple|      1 banana|      1 cherry"

printf 'b\nB\na\nA\nz\n' | ./tally -i >"$tmp/out"
expect "-i ties ordered by the printed line" "      2 a|      2 b|      1 z"

printf '\303\211t\303\251\n\303\251t\303\251\nETE\nete\n' | ./tally -i >"$tmp/out"
expect "-i folds ASCII letters only" "$(printf '      2 ETE|      1 \303\211t\303\251|      1 \303\251t\303\251')"

printf 'b\na\nb\nc\nb\na\nd\n' >"$tmp/in"
./tally -m 2 "$tmp/in" >"$tmp/out"
expect "-m 2" "      3 b|      2 a"

./tally -m 2 -n 1 "$tmp/in" >"$tmp/out"
expect "-m before -n" "      3 b"

./tally -n 1 -m 3 "$tmp/in" >"$tmp/out"
expect "-n then -m on the command line" "      3 b"

./tally -r -m 2 "$tmp/in" >"$tmp/out"
expect "-r with -m" "      2 a|      3 b"

./tally -m 4 "$tmp/in" >"$tmp/out"
expect "-m above every count" ""

./tally -m 1 "$tmp/in" >"$tmp/out"
expect "-m 1 keeps all" "      3 b|      2 a|      1 c|      1 d"

printf 'X\nx\ny\nY\ny\nz\n' | ./tally -i -m 2 -r >"$tmp/out"
expect "-i -m -r together" "      2 X|      3 y"

for bad in x 0 -1 2.5 ''; do
	n=$((n + 1))
	./tally -m "$bad" "$tmp/in" >"$tmp/out" 2>"$tmp/err"
	code=$?
	if [ $code -eq 2 ] && [ -s "$tmp/err" ]; then
		echo "ok $n - -m '$bad' is a usage error"
	else
		fails=$((fails + 1))
		echo "FAIL $n - -m '$bad': exit $code, want 2 with a message"
	fi
done

echo "$n checks, $fails failed"
[ $fails -eq 0 ]
