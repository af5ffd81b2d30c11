package bundle

import (
	"container/list"
	"context"
	"sync"
)

// Cache is a least-recently-used cache of values weighed in bytes, which
// fetches each missing key at most once at a time. The dispatcher caches
// bundles it reads from the store, a worker those it fetches from its
// dispatcher, a sandbox process its open Trees. It is safe for concurrent
// use.
//
// Eviction depends only on the sequence of Get, Put and Fetch calls, so two
// caches with the same bound that see the same calls hold the same keys:
// a sandbox pool mirrors what each of its processes holds that way.
type Cache[V any] struct {
	mu      sync.Mutex
	max     int64
	used    int64
	order   *list.List // front: most recently used
	items   map[string]*list.Element
	flights map[string]*flight[V]
}

type cacheEntry[V any] struct {
	key  string
	val  V
	size int64
}

type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// NewCache returns a cache holding at most maxBytes of values.
func NewCache[V any](maxBytes int64) *Cache[V] {
	return &Cache[V]{max: maxBytes, order: list.New(), items: map[string]*list.Element{}, flights: map[string]*flight[V]{}}
}

// Get returns the value of key and marks it used.
func (c *Cache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*cacheEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// Put stores key, evicting the least recently used values until it fits.
// A value larger than the whole cache is not kept.
func (c *Cache[V]) Put(key string, v V, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(key, v, size)
}

func (c *Cache[V]) put(key string, v V, size int64) {
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if size > c.max {
		return
	}
	for c.used+size > c.max {
		c.remove(c.order.Back())
	}
	c.items[key] = c.order.PushFront(&cacheEntry[V]{key: key, val: v, size: size})
	c.used += size
}

func (c *Cache[V]) remove(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry[V])
	delete(c.items, e.key)
	c.used -= e.size
}

// Fetch returns the value of key, calling fetch to get it (and its size)
// when it is missing. Concurrent Fetches of one key share one call; a
// failed fetch is not cached.
func (c *Cache[V]) Fetch(ctx context.Context, key string, fetch func(context.Context) (V, int64, error)) (V, error) {
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cacheEntry[V]).val, nil
	}
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.val, f.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()
	v, size, err := fetch(ctx)
	c.mu.Lock()
	delete(c.flights, key)
	if err == nil {
		c.put(key, v, size)
	}
	c.mu.Unlock()
	f.val, f.err = v, err
	close(f.done)
	return v, err
}

// Len is the number of values held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Bytes is the total size of the values held.
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}
