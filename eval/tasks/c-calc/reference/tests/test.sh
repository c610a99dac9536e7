#!/bin/sh
# make test: a few checks of ./calc
set -u
fails=0
check() {
	got=$(./calc "$1" 2>&1)
	[ "$got" = "$2" ] || { echo "FAIL: calc '$1' = '$got', want '$2'"; fails=$((fails + 1)); }
}
check '1 + 2 * 3' 7
check '2 ^ 3 ^ 2' 512
check '-2 ^ 2' -4
check '1 / 0' 'error: division by zero'
[ "$(printf 'x = 2\nx * x\n' | ./calc | tail -1)" = 4 ] || { echo "FAIL: variables"; fails=$((fails + 1)); }
[ $fails -eq 0 ] && echo ok
[ $fails -eq 0 ]
