// Acceptance tests of go-ringbuf.
package ringbuf_test

import (
	"fmt"
	"testing"

	"ringbuf"
)

func evalHiddenItems[T comparable](t *testing.T, got []T, want ...T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("Items() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Items() = %v, want %v", got, want)
		}
	}
}

func TestEvalHiddenPushPop(t *testing.T) {
	r := ringbuf.New[int](3)
	if r.Len() != 0 || r.Cap() != 3 {
		t.Fatalf("new ring: Len %d Cap %d", r.Len(), r.Cap())
	}
	if v, ok := r.Pop(); ok || v != 0 {
		t.Fatalf("Pop on empty = %v, %v", v, ok)
	}
	if v, ok := r.Peek(); ok || v != 0 {
		t.Fatalf("Peek on empty = %v, %v", v, ok)
	}
	r.Push(1)
	r.Push(2)
	if v, ok := r.Peek(); !ok || v != 1 {
		t.Fatalf("Peek = %v, %v", v, ok)
	}
	if r.Len() != 2 {
		t.Fatalf("Len after Peek = %d", r.Len())
	}
	if v, ok := r.Pop(); !ok || v != 1 {
		t.Fatalf("Pop = %v, %v", v, ok)
	}
	evalHiddenItems(t, r.Items(), 2)
}

func TestEvalHiddenOverwrite(t *testing.T) {
	r := ringbuf.New[string](3)
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		r.Push(s)
	}
	if r.Len() != 3 {
		t.Fatalf("Len = %d", r.Len())
	}
	evalHiddenItems(t, r.Items(), "c", "d", "e")
	if v, _ := r.Pop(); v != "c" {
		t.Fatalf("Pop = %q", v)
	}
	r.Push("f")
	r.Push("g")
	evalHiddenItems(t, r.Items(), "e", "f", "g")
}

func TestEvalHiddenItemsIsACopy(t *testing.T) {
	r := ringbuf.New[int](2)
	r.Push(1)
	r.Push(2)
	items := r.Items()
	items[0] = 99
	evalHiddenItems(t, r.Items(), 1, 2)
}

func TestEvalHiddenCapacityOne(t *testing.T) {
	r := ringbuf.New[int](1)
	r.Push(1)
	r.Push(2)
	evalHiddenItems(t, r.Items(), 2)
	if v, ok := r.Pop(); !ok || v != 2 {
		t.Fatalf("Pop = %v %v", v, ok)
	}
	if len(r.Items()) != 0 {
		t.Fatalf("Items of empty = %v", r.Items())
	}
}

func TestEvalHiddenPanics(t *testing.T) {
	for _, c := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", c)
				}
			}()
			ringbuf.New[int](c)
		}()
	}
}

func TestEvalHiddenModel(t *testing.T) {
	r := ringbuf.New[int](4)
	var model []int
	seed := uint32(1)
	for i := 0; i < 5000; i++ {
		seed = seed*1664525 + 1013904223
		if seed>>28 < 9 {
			r.Push(i)
			model = append(model, i)
			if len(model) > 4 {
				model = model[1:]
			}
		} else {
			v, ok := r.Pop()
			if len(model) == 0 {
				if ok {
					t.Fatalf("step %d: Pop on empty gave %v", i, v)
				}
				continue
			}
			if !ok || v != model[0] {
				t.Fatalf("step %d: Pop = %v %v, want %v", i, v, ok, model[0])
			}
			model = model[1:]
		}
		if r.Len() != len(model) {
			t.Fatalf("step %d: Len %d, want %d", i, r.Len(), len(model))
		}
		if fmt.Sprint(r.Items()) != fmt.Sprint(append([]int{}, model...)) {
			t.Fatalf("step %d: Items %v, want %v", i, r.Items(), model)
		}
	}
}

type evalHiddenPoint struct{ X, Y int }

func TestEvalHiddenStructs(t *testing.T) {
	r := ringbuf.New[evalHiddenPoint](2)
	r.Push(evalHiddenPoint{1, 2})
	if v, ok := r.Pop(); !ok || v != (evalHiddenPoint{1, 2}) {
		t.Fatalf("Pop = %v", v)
	}
}
