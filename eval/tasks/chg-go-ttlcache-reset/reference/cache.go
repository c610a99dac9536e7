// Package ttlcache is an in-memory cache whose entries expire a fixed time
// after they are set, with an optional bound on the number of entries (the
// least recently used entry goes first). It is safe for concurrent use.
package ttlcache

import (
	"container/list"
	"sync"
	"time"
)

type entry[K comparable, V any] struct {
	key     K
	value   V
	expires time.Time
	elem    *list.Element // in Cache.order, most recently used at the front
}

// Cache maps keys of type K to values of type V.
type Cache[K comparable, V any] struct {
	mu         sync.Mutex
	ttl        time.Duration
	maxEntries int
	now        func() time.Time
	items      map[K]*entry[K, V]
	order      *list.List
	onEvict    func(K, V)
}

// Option configures a Cache.
type Option[K comparable, V any] func(*Cache[K, V])

// WithMaxEntries bounds the cache to n entries (n <= 0: no bound); setting a
// new key in a full cache evicts the least recently used entry.
func WithMaxEntries[K comparable, V any](n int) Option[K, V] {
	return func(c *Cache[K, V]) { c.maxEntries = n }
}

// WithClock replaces time.Now, for tests.
func WithClock[K comparable, V any](now func() time.Time) Option[K, V] {
	return func(c *Cache[K, V]) { c.now = now }
}

// WithOnEvict calls fn for every entry that leaves the cache because it
// expired or was evicted (not for Delete). fn runs with the cache locked: it
// must not call the cache.
func WithOnEvict[K comparable, V any](fn func(K, V)) Option[K, V] {
	return func(c *Cache[K, V]) { c.onEvict = fn }
}

// New makes a cache whose entries live for ttl after they are set.
func New[K comparable, V any](ttl time.Duration, opts ...Option[K, V]) *Cache[K, V] {
	c := &Cache[K, V]{ttl: ttl, now: time.Now, items: map[K]*entry[K, V]{}, order: list.New()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Set stores value under key for the cache's ttl, counted from now (also
// when the key is already there).
func (c *Cache[K, V]) Set(key K, value V) {
	c.SetWithTTL(key, value, c.ttl)
}

// SetWithTTL stores value under key for ttl, counted from now.
func (c *Cache[K, V]) SetWithTTL(key K, value V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if e, ok := c.items[key]; ok {
		// a new lifetime from now, as for a new key
		e.value = value
		e.expires = now.Add(ttl)
		c.order.MoveToFront(e.elem)
		return
	}
	e := &entry[K, V]{key: key, value: value, expires: now.Add(ttl)}
	e.elem = c.order.PushFront(e)
	c.items[key] = e
	if c.maxEntries > 0 && len(c.items) > c.maxEntries {
		c.removeExpired(now)
		if len(c.items) > c.maxEntries {
			oldest := c.order.Back().Value.(*entry[K, V])
			c.remove(oldest, true)
		}
	}
}

// Get returns the value of key and true, or false when it is missing or
// expired. A hit makes the entry the most recently used.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	e, ok := c.items[key]
	if !ok {
		return zero, false
	}
	if !c.now().Before(e.expires) {
		c.remove(e, true)
		return zero, false
	}
	c.order.MoveToFront(e.elem)
	return e.value, true
}

// TTL returns how long key has left, or false when it is missing or expired.
func (c *Cache[K, V]) TTL(key K) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return 0, false
	}
	left := e.expires.Sub(c.now())
	if left <= 0 {
		return 0, false
	}
	return left, true
}

// Delete removes key; it reports whether the key was there (and not expired).
func (c *Cache[K, V]) Delete(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return false
	}
	live := c.now().Before(e.expires)
	c.remove(e, !live)
	return live
}

// Len returns the number of entries that have not expired.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	n := 0
	for _, e := range c.items {
		if now.Before(e.expires) {
			n++
		}
	}
	return n
}

// Keys returns the keys that have not expired, most recently used first.
func (c *Cache[K, V]) Keys() []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []K
	for el := c.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry[K, V])
		if now.Before(e.expires) {
			out = append(out, e.key)
		}
	}
	return out
}

// Purge removes the expired entries and returns how many it removed.
func (c *Cache[K, V]) Purge() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removeExpired(c.now())
}

func (c *Cache[K, V]) removeExpired(now time.Time) int {
	n := 0
	for _, e := range c.items {
		if !now.Before(e.expires) {
			c.remove(e, true)
			n++
		}
	}
	return n
}

func (c *Cache[K, V]) remove(e *entry[K, V], evicted bool) {
	c.order.Remove(e.elem)
	delete(c.items, e.key)
	if evicted && c.onEvict != nil {
		c.onEvict(e.key, e.value)
	}
}
