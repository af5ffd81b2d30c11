package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// WaitSince(n) returns at once when a Wake came after the first n, however
// the wake-up channel's one token was spent meanwhile, and otherwise sleeps
// until the next Wake or the poll interval. This is what keeps a claim that
// came back short from missing a task announced while it ran: push mode
// runs claims concurrently, and the token of that announcement may have
// gone to another claim's wait (a task then sat in the queue for the 1 s
// poll interval in a benchmark round).
func TestWaitSince(t *testing.T) {
	const poll = 30 * time.Second
	st := store.New(redistest.StartMini(t), store.Options{})
	cases := []struct {
		name  string
		setup func(c *Core) uint64 // returns the n to wait since
		wake  bool                 // Wake while waiting
	}{
		{"a wake since n, its token spent by another wait", func(c *Core) uint64 {
			n := c.Wakes()
			c.Wake()
			<-c.wake // another claim's wait took the token
			return n
		}, false},
		{"a wake since n, its token still there", func(c *Core) uint64 {
			n := c.Wakes()
			c.Wake()
			return n
		}, false},
		{"a stale token from before n, then a wake while waiting", func(c *Core) uint64 {
			c.Wake()
			return c.Wakes()
		}, true},
		{"nothing since n, then a wake while waiting", func(c *Core) uint64 {
			return c.Wakes()
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCore(Config{Store: st, Poll: poll})
			if err != nil {
				t.Fatal(err)
			}
			n := tc.setup(c)
			done := make(chan struct{})
			go func() {
				c.WaitSince(context.Background(), n)
				close(done)
			}()
			if tc.wake {
				select {
				case <-done:
					t.Fatal("WaitSince returned with no Wake since n")
				case <-time.After(100 * time.Millisecond):
				}
				c.Wake()
			}
			select {
			case <-done:
			case <-time.After(poll / 2):
				t.Fatal("WaitSince slept on though a Wake came after n")
			}
		})
	}

	// With nothing since n it sleeps until the poll interval, or ctx's end.
	c, err := NewCore(Config{Store: st, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Wake()
	t0 := time.Now()
	c.WaitSince(context.Background(), c.Wakes())
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Errorf("WaitSince returned after %s, before the poll interval, with no Wake since n", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2, _ := NewCore(Config{Store: st, Poll: poll})
	c2.WaitSince(ctx, c2.Wakes()) // returns: ctx is done
}
