#!/bin/sh
# Acceptance tests of c-calc: builds with make, then runs ./calc.
n=0
fails=0
pass() { n=$((n + 1)); }
fail() {
	n=$((n + 1))
	fails=$((fails + 1))
	echo "FAIL: $*"
}

make >/tmp/eval_hidden_make.log 2>&1 || {
	cat /tmp/eval_hidden_make.log
	echo "FAIL: make did not succeed"
	exit 1
}
[ -x ./calc ] || {
	echo "FAIL: make did not build ./calc"
	exit 1
}

# is_num TEXT: TEXT is one number as printf %g writes it
is_num() {
	printf '%s\n' "$1" | grep -Eq '^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'
}
# close A B: the numbers A and B agree to 1e-9 (relative)
close() {
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; if (m < 1) m = 1; exit !(d <= 1e-9 * m) }'
}

# value EXPR WANT: ./calc EXPR prints WANT and exits 0
value() {
	out=$(./calc "$1" 2>/tmp/eval_hidden_err)
	code=$?
	if [ $code -ne 0 ]; then
		fail "calc '$1': exit $code: $(cat /tmp/eval_hidden_err)"
	elif ! is_num "$out"; then
		fail "calc '$1' printed '$out', not a number"
	elif ! close "$out" "$2"; then
		fail "calc '$1' = $out, want $2"
	else
		pass
	fi
}

# error EXPR: ./calc EXPR exits 1, prints 'error:...' on stderr and nothing on stdout
error() {
	out=$(./calc "$1" 2>/tmp/eval_hidden_err)
	code=$?
	if [ $code -ne 1 ]; then
		fail "calc '$1': exit $code, want 1 (stdout '$out')"
	elif [ -n "$out" ]; then
		fail "calc '$1': printed '$out' on an error"
	elif ! grep -q '^error:' /tmp/eval_hidden_err; then
		fail "calc '$1': no 'error:' message on stderr: $(cat /tmp/eval_hidden_err)"
	else
		pass
	fi
}

value '1 + 2 * 3' 7
value '(1 + 2) * 3' 9
value '  1+2 ' 3
value '10 / 4' 2.5
value '7 % 3' 1
value '-7 % 3' -1
value '7.5 % 2' 1.5
value '2 ^ 3 ^ 2' 512
value '(2 ^ 3) ^ 2' 64
value '-2 ^ 2' -4
value '2 ^ -1' 0.5
value '2 * -3' -6
value '- - 4' 4
value '+5' 5
value '2 * (3 + 4) - -1' 15
value '.5 + 1e3' 1000.5
value '1.5e-3 * 2' 0.003
value 'sqrt(16) + abs(-3)' 7
value 'sqrt(2) * sqrt(2)' 2
value 'abs(3 - 10) * 2' 14
value 'pi' 3.14159265358979
value 'e' 2.718281828459045
value '2*pi' 6.283185307179586
value 'x = 6 * 7' 42
value '100 - 99 - 1' 0
value '2 / 4 / 2' 0.25
value '1/3' 0.333333333333333

out=$(./calc '1/3')
[ "$out" = "0.3333333333" ] && pass || fail "calc '1/3' printed '$out', want %.10g: 0.3333333333"

error ''
error '1 +'
error '(1 + 2'
error '1 + 2)'
error '1 2'
error '1 / 0'
error '5 % 0'
error 'foo + 1'
error 'sqrt(-1)'
error 'nosuch(2)'
error '2 ** 3'
error '3 = 4'
error '1 $ 2'
error 'sqrt 4'

# standard input: variables carry over, errors do not stop the run
out=$(printf 'x = 3\nx * 2\n\ny = x + 1\ny ^ 2\nbad +\nz\npi = 3\npi * 2\n' | ./calc 2>/tmp/eval_hidden_err)
code=$?
want="3 6 4 16 3 6"
got=$(printf '%s\n' "$out" | tr '\n' ' ' | sed 's/ *$//')
if [ "$got" != "$want" ]; then
	fail "standard input gave '$got', want '$want'"
else
	pass
fi
[ $code -eq 1 ] && pass || fail "standard input with failing lines: exit $code, want 1"
[ "$(grep -c '^error:' /tmp/eval_hidden_err)" -eq 2 ] && pass ||
	fail "standard input: want 2 error lines, got: $(cat /tmp/eval_hidden_err)"

out=$(printf '1 + 1\n2 * 2\n' | ./calc 2>/dev/null)
code=$?
[ $code -eq 0 ] && [ "$(printf '%s' "$out" | tr '\n' ' ')" = "2 4" ] && pass ||
	fail "standard input without errors: exit $code, output '$out'"

out=$(printf '' | ./calc 2>/dev/null)
code=$?
[ $code -eq 0 ] && [ -z "$out" ] && pass || fail "empty standard input: exit $code, output '$out'"

echo "$n checks, $fails failed"
[ $fails -eq 0 ]
