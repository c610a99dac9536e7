// Acceptance tests of chg-go-ttlcache-reset.
package ttlcache_test

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"ttlcache"
)

type evalHiddenClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *evalHiddenClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *evalHiddenClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func evalHiddenNew(opts ...ttlcache.Option[string, int]) (*ttlcache.Cache[string, int], *evalHiddenClock) {
	clk := &evalHiddenClock{t: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)}
	opts = append([]ttlcache.Option[string, int]{ttlcache.WithClock[string, int](clk.now)}, opts...)
	return ttlcache.New[string, int](5*time.Minute, opts...), clk
}

func TestEvalHiddenSetRenews(t *testing.T) {
	c, clk := evalHiddenNew()
	c.Set("session", 1)
	for i := 2; i <= 10; i++ {
		clk.advance(time.Minute)
		c.Set("session", i)
	}
	clk.advance(4*time.Minute + 59*time.Second)
	if v, ok := c.Get("session"); !ok || v != 10 {
		t.Fatalf("Get = %v %v: a key set again a while ago is gone", v, ok)
	}
	if left, ok := c.TTL("session"); !ok || left != time.Second {
		t.Fatalf("TTL = %v %v, want 1s", left, ok)
	}
	clk.advance(time.Second)
	if _, ok := c.Get("session"); ok {
		t.Fatal("still there 5 minutes after it was last set")
	}
}

func TestEvalHiddenSetWithTTLOnExisting(t *testing.T) {
	c, clk := evalHiddenNew()
	c.Set("k", 1)
	clk.advance(time.Minute)
	c.SetWithTTL("k", 2, time.Hour)
	clk.advance(30 * time.Minute)
	if v, ok := c.Get("k"); !ok || v != 2 {
		t.Fatalf("a longer ttl on an existing key: Get = %v %v", v, ok)
	}
	c.SetWithTTL("k", 3, 10*time.Second)
	clk.advance(11 * time.Second)
	if _, ok := c.Get("k"); ok {
		t.Fatal("a shorter ttl on an existing key was not applied")
	}
}

func TestEvalHiddenSetExpiredKey(t *testing.T) {
	c, clk := evalHiddenNew()
	c.Set("k", 1)
	clk.advance(6 * time.Minute)
	c.Set("k", 2)
	if v, ok := c.Get("k"); !ok || v != 2 {
		t.Fatalf("setting an expired key: Get = %v %v", v, ok)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d", c.Len())
	}
}

func TestEvalHiddenRecencyAndCounting(t *testing.T) {
	var evicted []string
	c, clk := evalHiddenNew(ttlcache.WithMaxEntries[string, int](2),
		ttlcache.WithOnEvict[string, int](func(k string, v int) { evicted = append(evicted, k) }))
	c.Set("a", 1)
	c.Set("b", 2)
	clk.advance(time.Minute)
	c.Set("a", 3) // a is now the most recently used
	c.Set("c", 4) // evicts b
	if got, want := c.Keys(), []string{"c", "a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(evicted, []string{"b"}) {
		t.Fatalf("OnEvict saw %v, want [b]", evicted)
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d", c.Len())
	}
}
