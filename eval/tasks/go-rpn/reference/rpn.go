// Package rpn evaluates expressions in reverse Polish notation.
package rpn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The errors Eval returns wrap one of these.
var (
	ErrEmpty           = errors.New("empty expression")
	ErrBadToken        = errors.New("not a number or an operator")
	ErrTooFewOperands  = errors.New("too few operands")
	ErrTooManyOperands = errors.New("too many operands")
	ErrDivisionByZero  = errors.New("division by zero")
)

// Eval evaluates expr: whitespace-separated numbers and the operators + - * /.
func Eval(expr string) (float64, error) {
	tokens := strings.Fields(expr)
	if len(tokens) == 0 {
		return 0, ErrEmpty
	}
	var stack []float64
	for i, tok := range tokens {
		switch tok {
		case "+", "-", "*", "/":
			if len(stack) < 2 {
				return 0, fmt.Errorf("token %d %q: %w", i+1, tok, ErrTooFewOperands)
			}
			a, b := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-2]
			var r float64
			switch tok {
			case "+":
				r = a + b
			case "-":
				r = a - b
			case "*":
				r = a * b
			case "/":
				if b == 0 {
					return 0, fmt.Errorf("token %d %q: %w", i+1, tok, ErrDivisionByZero)
				}
				r = a / b
			}
			stack = append(stack, r)
		default:
			v, err := strconv.ParseFloat(tok, 64)
			if err != nil {
				return 0, fmt.Errorf("token %d %q: %w", i+1, tok, ErrBadToken)
			}
			stack = append(stack, v)
		}
	}
	if len(stack) > 1 {
		return 0, fmt.Errorf("%d values left: %w", len(stack), ErrTooManyOperands)
	}
	return stack[0], nil
}
