package api

import (
	"sync"

	"github.com/wasmfaas/wasmfaas/store"
)

// fnCache keeps registered functions in memory. A function never changes
// once registered (and never expires), so a call need not read it from
// Redis every time: that read was one of the API's two Redis round trips
// per execute. It holds at most max bytes of payload and starts over when
// full.
type fnCache struct {
	mu    sync.Mutex
	m     map[string]store.Function
	bytes int
	max   int
}

func newFnCache(max int) *fnCache { return &fnCache{m: map[string]store.Function{}, max: max} }

func (c *fnCache) get(id string) (store.Function, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[id]
	return f, ok
}

func (c *fnCache) put(f store.Function) {
	size := len(f.Payload) + len(f.Source) + len(f.Name) + 256
	if size > c.max/16 {
		return // a huge function is read from Redis each time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[f.ID]; ok {
		return
	}
	if c.bytes+size > c.max {
		c.m, c.bytes = map[string]store.Function{}, 0
	}
	c.m[f.ID] = f
	c.bytes += size
}
