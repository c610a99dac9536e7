#!/bin/sh
# Acceptance tests of chg-c-ini-section: the library under AddressSanitizer
# (leak checking needs ptrace, which the sandbox denies), then ./iniget.
set -e
bin=${TMPDIR:-/tmp}/eval_hidden_ini.$$
cc -g -O1 -Wall -fsanitize=address,undefined -fno-omit-frame-pointer -I. \
	-o "$bin" eval_hidden_ini.c ini.c
ASAN_OPTIONS=detect_leaks=0 "$bin"

make iniget >/dev/null
f=${TMPDIR:-/tmp}/eval_hidden_app.$$.ini
printf '[db_replica]\nhost = replica.example\n[db]\nhost = primary.example\n' >"$f"
got=$(./iniget "$f" db host)
[ "$got" = "primary.example" ] || { echo "FAIL: iniget db host printed '$got'"; exit 1; }
if ./iniget "$f" "" host >/dev/null 2>&1; then
	echo "FAIL: iniget found 'host' in section \"\""
	exit 1
fi
echo "iniget checks passed"
