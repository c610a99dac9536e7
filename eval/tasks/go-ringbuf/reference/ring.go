// Package ringbuf is a fixed-size ring buffer that overwrites its oldest
// value when full. Not safe for concurrent use.
package ringbuf

// Ring holds up to Cap() values of type T.
type Ring[T any] struct {
	buf   []T
	start int // index of the oldest value
	n     int
}

// New makes an empty ring for capacity values; it panics when capacity < 1.
func New[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		panic("ringbuf: capacity must be at least 1")
	}
	return &Ring[T]{buf: make([]T, capacity)}
}

// Push appends v, overwriting the oldest value when the ring is full.
func (r *Ring[T]) Push(v T) {
	end := (r.start + r.n) % len(r.buf)
	r.buf[end] = v
	if r.n < len(r.buf) {
		r.n++
	} else {
		r.start = (r.start + 1) % len(r.buf)
	}
}

// Pop removes and returns the oldest value; false when the ring is empty.
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.start]
	r.buf[r.start] = zero
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	return v, true
}

// Peek returns the oldest value without removing it.
func (r *Ring[T]) Peek() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	return r.buf[r.start], true
}

// Len is the number of values held.
func (r *Ring[T]) Len() int { return r.n }

// Cap is the most values the ring holds.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Items returns a copy of the values, oldest first.
func (r *Ring[T]) Items() []T {
	out := make([]T, r.n)
	for i := 0; i < r.n; i++ {
		out[i] = r.buf[(r.start+i)%len(r.buf)]
	}
	return out
}
