#!/bin/sh
# make test: runs ./tally on small inputs and compares the output.
set -u
cd "$(dirname "$0")/.."
n=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME EXPECTED (the output of the command in $tmp/out)
	n=$((n + 1))
	if [ "$(cat "$tmp/out")" = "$2" ]; then
		echo "ok $n - $1"
	else
		fails=$((fails + 1))
		echo "not ok $n - $1"
		printf '# got:\n%s\n# want:\n%s\n' "$(cat "$tmp/out")" "$2"
	fi
}

printf 'b\na\nb\nc\nb\na\n' >"$tmp/in"
./tally "$tmp/in" >"$tmp/out"
check "counts, most frequent first" "      3 b
      2 a
      1 c"

printf 'x\ny\nz\n' | ./tally >"$tmp/out"
check "standard input, ties by the line" "      1 x
      1 y
      1 z"

./tally -n 2 "$tmp/in" >"$tmp/out"
check "-n" "      3 b
      2 a"

./tally -r "$tmp/in" >"$tmp/out"
check "-r" "      1 c
      2 a
      3 b"

printf 'last\nlast' >"$tmp/nonl"
./tally "$tmp/nonl" "$tmp/in" >"$tmp/out"
check "several files; a last line without a newline" "      3 b
      2 a
      2 last
      1 c"

printf 'A\na\n\n\n' | ./tally >"$tmp/out"
check "case matters; empty lines count" "      2 
      1 A
      1 a"

./tally "$tmp/missing" "$tmp/in" >"$tmp/out" 2>"$tmp/err"
code=$?
n=$((n + 1))
if [ $code -eq 1 ] && grep -q missing "$tmp/err" && grep -q '3 b' "$tmp/out"; then
	echo "ok $n - a missing file is reported, the others counted"
else
	fails=$((fails + 1))
	echo "not ok $n - a missing file: exit $code"
fi

./tally -n x "$tmp/in" >"$tmp/out" 2>&1
code=$?
n=$((n + 1))
if [ $code -eq 2 ]; then echo "ok $n - -n x is a usage error"; else fails=$((fails + 1)); echo "not ok $n - -n x: exit $code"; fi

echo "1..$n"
[ $fails -eq 0 ]
