package rpn

import (
	"errors"
	"testing"
)

func TestEval(t *testing.T) {
	if v, err := Eval("2 3 *"); err != nil || v != 6 {
		t.Fatalf("got %v %v", v, err)
	}
	if _, err := Eval("1 0 /"); !errors.Is(err, ErrDivisionByZero) {
		t.Fatalf("got %v", err)
	}
}
