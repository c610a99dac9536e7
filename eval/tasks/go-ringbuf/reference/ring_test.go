package ringbuf

import "testing"

func TestOverwrite(t *testing.T) {
	r := New[int](2)
	r.Push(1)
	r.Push(2)
	r.Push(3)
	if v, _ := r.Pop(); v != 2 {
		t.Fatalf("Pop = %d", v)
	}
}
