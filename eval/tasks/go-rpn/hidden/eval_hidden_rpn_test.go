// Acceptance tests of go-rpn.
package rpn_test

import (
	"errors"
	"math"
	"testing"

	"rpn"
)

func TestEvalHiddenValues(t *testing.T) {
	cases := map[string]float64{
		"5 1 2 + 4 * + 3 -": 14,
		"3 4 +":             7,
		"10 4 -":            6,
		"7 2 /":             3.5,
		"2.5e3 2 *":         5000,
		"-3 -4 *":           12,
		"42":                42,
		"  1\t2\n+  ":       3,
		"1 2 3 4 + + +":     10,
		"0.1 0.2 +":         0.30000000000000004,
	}
	for expr, want := range cases {
		got, err := rpn.Eval(expr)
		if err != nil {
			t.Errorf("Eval(%q): error %v", expr, err)
			continue
		}
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("Eval(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestEvalHiddenErrors(t *testing.T) {
	cases := []struct {
		expr string
		want error
	}{
		{"", rpn.ErrEmpty},
		{"   ", rpn.ErrEmpty},
		{"1 2 x", rpn.ErrBadToken},
		{"1 2 %", rpn.ErrBadToken},
		{"3 +", rpn.ErrTooFewOperands},
		{"+", rpn.ErrTooFewOperands},
		{"1 2", rpn.ErrTooManyOperands},
		{"1 2 3 +", rpn.ErrTooManyOperands},
		{"1 0 /", rpn.ErrDivisionByZero},
		{"4 2 2 - /", rpn.ErrDivisionByZero},
	}
	sentinels := []error{rpn.ErrEmpty, rpn.ErrBadToken, rpn.ErrTooFewOperands,
		rpn.ErrTooManyOperands, rpn.ErrDivisionByZero}
	for _, c := range cases {
		_, err := rpn.Eval(c.expr)
		if err == nil {
			t.Errorf("Eval(%q): no error, want %v", c.expr, c.want)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("Eval(%q): error %v is not %v", c.expr, err, c.want)
		}
		for _, s := range sentinels {
			if s != c.want && errors.Is(err, s) {
				t.Errorf("Eval(%q): error %v also matches %v", c.expr, err, s)
			}
		}
	}
}

func TestEvalHiddenDistinctSentinels(t *testing.T) {
	all := []error{rpn.ErrEmpty, rpn.ErrBadToken, rpn.ErrTooFewOperands,
		rpn.ErrTooManyOperands, rpn.ErrDivisionByZero}
	for i, a := range all {
		if a == nil {
			t.Fatalf("sentinel %d is nil", i)
		}
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v and %v are the same error", a, b)
			}
		}
	}
}
