package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
)

// WaitSince(n) returns at once when a Wake came after the first n, and
// otherwise sleeps until the next Wake or the poll interval; one Wake wakes
// every waiter. This is what keeps a claim that came back short from
// missing a task announced while it ran: push mode runs claims
// concurrently, and with a one-token wake-up the token of that
// announcement could go to another claim's wait (a task then sat in the
// queue for the 1 s poll interval in a benchmark round).
func TestWaitSince(t *testing.T) {
	const poll = 30 * time.Second
	st := store.New(redistest.StartMini(t), store.Options{})
	cases := []struct {
		name  string
		setup func(c *Core) uint64 // returns the n to wait since
		wake  bool                 // Wake while waiting
	}{
		{"a wake since n", func(c *Core) uint64 {
			n := c.Wakes()
			c.Wake()
			return n
		}, false},
		{"a wake before n, then a wake while waiting", func(c *Core) uint64 {
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
			// Three claims wait at once: all must wake.
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() { defer wg.Done(); c.WaitSince(context.Background(), n) }()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
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

// Cancellations published while the cancel subscription was down are lost:
// when it is back (store.Resubscribed), the core renews its leases at once
// instead of at the next tick, and so stops a task cancelled meanwhile.
func TestResubscribedCancelsRenewAtOnce(t *testing.T) {
	st := store.New(redistest.StartMini(t), store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := NewCore(Config{Store: st, Lease: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	id := storetest.Enqueue(t, st, "gAROLg==", "gAROLg==")
	cls, err := c.Claim(ctx, 1)
	if err != nil || len(cls) != 1 {
		t.Fatalf("Claim = %v, %v", cls, err)
	}
	stopped := make(chan struct{})
	c.Track(cls[0], func() { close(stopped) })
	if r, err := st.Cancel(ctx, id); err != nil || !r.Cancelled {
		t.Fatalf("Cancel = %+v, %v", r, err)
	}
	// The cancellation was not heard; the subscription comes back.
	ids := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.renewLoop(ctx) }()
	go func() { defer wg.Done(); c.listenCancels(ctx, ids, func() {}) }()
	defer func() { cancel(); close(ids); wg.Wait() }()
	ids <- store.Resubscribed
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the task cancelled while the subscription was down was not stopped")
	}
}

// NothingNew is true only between a claim that came back short and the next
// Wake, for at most the poll interval, and never with a running cap (a
// lease dropped anywhere can make a capped tenant's queued tasks runnable
// without an announcement).
func TestNothingNew(t *testing.T) {
	const poll = 80 * time.Millisecond
	cases := []struct {
		name string
		opts store.Options
		do   func(t *testing.T, c *Core, st *store.Store)
		want bool
	}{
		{"no claim yet", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {}, false},
		{"a short claim", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			claimN(t, c, 2, 0)
		}, true},
		{"a short claim, then a Wake", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			claimN(t, c, 2, 0)
			c.Wake()
		}, false},
		{"a Wake, then a short claim", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			c.Wake()
			claimN(t, c, 1, 0)
		}, true},
		{"a full claim", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			storetest.Enqueue(t, st, "gAROLg==", "gAROLg==")
			claimN(t, c, 1, 1)
		}, false},
		{"a short claim, then the poll interval", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			claimN(t, c, 1, 0)
			time.Sleep(poll + 20*time.Millisecond)
		}, false},
		{"a completion whose claim came back short", store.Options{}, func(t *testing.T, c *Core, st *store.Store) {
			storetest.Enqueue(t, st, "gAROLg==", "gAROLg==")
			cl := claimN(t, c, 1, 1)[0]
			c.Track(cl, func() {})
			if ok, next := c.CompleteAndClaimFor(context.Background(), cl, &faastype.Result{Status: faastype.Completed, Payload: []byte("\x80\x04N.")}, c.Name(), 1); !ok || len(next) != 0 {
				t.Fatalf("CompleteAndClaimFor = %v, %d claims", ok, len(next))
			}
		}, true},
		{"a short claim with a running cap", store.Options{MaxRunning: 2}, func(t *testing.T, c *Core, st *store.Store) {
			claimN(t, c, 2, 0)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := store.New(redistest.StartMini(t), tc.opts)
			c, err := NewCore(Config{Store: st, Poll: poll})
			if err != nil {
				t.Fatal(err)
			}
			tc.do(t, c, st)
			w, got := c.NothingNew()
			if got != tc.want {
				t.Fatalf("NothingNew = %v, want %v", got, tc.want)
			}
			if got && w != c.Wakes() {
				t.Fatalf("NothingNew's count %d, Wakes %d", w, c.Wakes())
			}
		})
	}
}

func claimN(t *testing.T, c *Core, n, want int) []store.Claim {
	t.Helper()
	cls, err := c.Claim(context.Background(), n)
	if err != nil || len(cls) != want {
		t.Fatalf("Claim(%d) = %d claims, %v; want %d", n, len(cls), err, want)
	}
	return cls
}
