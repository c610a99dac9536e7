package ttlcache

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// clock is a fake time source that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSetGet(t *testing.T) {
	clk := newClock()
	c := New[string, int](time.Minute, WithClock[string, int](clk.now))
	c.Set("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get = %v %v", v, ok)
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("Get of a missing key")
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d", c.Len())
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	c := New[string, int](time.Minute, WithClock[string, int](clk.now))
	c.Set("a", 1)
	clk.advance(59 * time.Second)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("expired too early")
	}
	if left, ok := c.TTL("a"); !ok || left != time.Second {
		t.Fatalf("TTL = %v %v", left, ok)
	}
	clk.advance(time.Second)
	if _, ok := c.Get("a"); ok {
		t.Fatal("still there at its expiry time")
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d", c.Len())
	}
}

func TestSetWithTTL(t *testing.T) {
	clk := newClock()
	c := New[string, string](time.Hour, WithClock[string, string](clk.now))
	c.SetWithTTL("short", "x", 10*time.Second)
	c.Set("long", "y")
	clk.advance(11 * time.Second)
	if _, ok := c.Get("short"); ok {
		t.Error("short lived too long")
	}
	if _, ok := c.Get("long"); !ok {
		t.Error("long is gone")
	}
}

func TestMaxEntries(t *testing.T) {
	clk := newClock()
	c := New[int, int](time.Minute, WithClock[int, int](clk.now), WithMaxEntries[int, int](3))
	for i := 1; i <= 3; i++ {
		c.Set(i, i)
	}
	c.Get(1) // 2 is now the least recently used
	c.Set(4, 4)
	if _, ok := c.Get(2); ok {
		t.Error("2 should have been evicted")
	}
	if got, want := c.Keys(), []int{4, 1, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys = %v, want %v", got, want)
	}
}

func TestMaxEntriesPrefersExpired(t *testing.T) {
	clk := newClock()
	c := New[int, int](time.Minute, WithClock[int, int](clk.now), WithMaxEntries[int, int](2))
	c.SetWithTTL(1, 1, time.Second)
	c.Set(2, 2)
	c.Get(1)
	clk.advance(2 * time.Second)
	c.Set(3, 3)
	if got := c.Keys(); !reflect.DeepEqual(got, []int{3, 2}) {
		t.Errorf("Keys = %v", got)
	}
}

func TestDeleteAndPurge(t *testing.T) {
	clk := newClock()
	var evicted []string
	c := New[string, int](time.Minute, WithClock[string, int](clk.now),
		WithOnEvict[string, int](func(k string, _ int) { evicted = append(evicted, k) }))
	c.Set("a", 1)
	c.Set("b", 2)
	c.SetWithTTL("c", 3, time.Second)
	if !c.Delete("a") || c.Delete("a") {
		t.Error("Delete")
	}
	clk.advance(2 * time.Second)
	if n := c.Purge(); n != 1 {
		t.Errorf("Purge removed %d", n)
	}
	if !reflect.DeepEqual(evicted, []string{"c"}) {
		t.Errorf("evicted %v", evicted)
	}
}

func TestConcurrent(t *testing.T) {
	c := New[string, int](time.Minute)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				k := fmt.Sprint(i % 50)
				c.Set(k, i)
				c.Get(k)
				if i%100 == 0 {
					c.Purge()
				}
			}
		}(g)
	}
	wg.Wait()
	if c.Len() != 50 {
		t.Fatalf("Len = %d", c.Len())
	}
}

func TestSetAgainRenews(t *testing.T) {
	clk := newClock()
	c := New[string, int](time.Minute, WithClock[string, int](clk.now))
	c.Set("a", 1)
	clk.advance(50 * time.Second)
	c.Set("a", 2)
	clk.advance(50 * time.Second)
	if v, ok := c.Get("a"); !ok || v != 2 {
		t.Fatalf("Get = %v %v: setting again did not renew the lifetime", v, ok)
	}
	clk.advance(2 * time.Minute)
	c.SetWithTTL("a", 3, time.Second)
	if v, ok := c.Get("a"); !ok || v != 3 {
		t.Fatalf("Get of an expired key set again = %v %v", v, ok)
	}
}
