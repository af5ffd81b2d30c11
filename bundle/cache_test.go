package bundle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewCache[string](10)
	c.Put("a", "A", 4)
	c.Put("b", "B", 4)
	c.Get("a") // b is now the oldest
	c.Put("c", "C", 4)
	if _, ok := c.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s was evicted", k)
		}
	}
	c.Put("huge", "H", 11)
	if _, ok := c.Get("huge"); ok || c.Len() != 2 || c.Bytes() != 8 {
		t.Fatalf("a value over the bound was kept: len %d, bytes %d", c.Len(), c.Bytes())
	}
	c.Put("a", "A2", 6) // replaces the old value; c still fits
	if v, _ := c.Get("a"); v != "A2" || c.Bytes() != 10 {
		t.Fatalf("got %q, %d bytes", v, c.Bytes())
	}
}

func TestCacheFetchesOnce(t *testing.T) {
	c := NewCache[int](100)
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Fetch(context.Background(), "k", func(context.Context) (int, int64, error) {
				calls.Add(1)
				<-release
				return 42, 1, nil
			})
			if v != 42 || err != nil {
				t.Errorf("got %d, %v", v, err)
			}
		}()
	}
	for calls.Load() == 0 {
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	boom := errors.New("boom")
	if _, err := c.Fetch(context.Background(), "bad", func(context.Context) (int, int64, error) { return 0, 0, boom }); err != boom {
		t.Fatalf("got %v", err)
	}
	if _, ok := c.Get("bad"); ok {
		t.Fatal("a failed fetch was cached")
	}
}
