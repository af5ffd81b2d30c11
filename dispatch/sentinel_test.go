package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
)

// After a Sentinel failover, a RUNNING task that is cancelled is still
// stopped at once (the lease is long, so its renewal cannot be what stops
// it): the cancel subscription follows the new primary, and a cancellation
// published before it was back is caught by the renewal it makes when it
// is (store.Resubscribed).
func TestCancelRunningTaskAfterSentinelFailover(t *testing.T) {
	sen := redistest.StartSentinel(t, false)
	rdb := sen.Client(t)
	st := store.New(rdb, store.Options{})
	pool, err := runtime.NewPool(context.Background(), runtime.PoolConfig{Size: 1, Limits: faastype.Limits{Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pk := pyfixture.Pickles(t, "def nap(s):\n    import time\n    time.sleep(s)\n    return s", "nap", "((600,), {})", "((0,), {})")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := RunLocal(ctx, Config{Store: st, Lease: 10 * time.Minute}, pool); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	long := storetest.Enqueue(t, st, pk[0], pk[1])
	deadline := time.Now().Add(30 * time.Second)
	for pool.Stats().Busy == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the long task never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The claim is on the replica before the primary goes.
	if n, err := rdb.Do(context.Background(), "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}
	t.Logf("promoted %s", sen.KillPrimary(t))
	var c store.Cancellation
	deadline = time.Now().Add(30 * time.Second)
	for {
		c, err = st.Cancel(context.Background(), long)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || c != (store.Cancellation{Cancelled: true, Was: faastype.Running}) {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	next := storetest.Enqueue(t, st, pk[0], pk[2])
	tasks := storetest.WaitFinal(t, st, []string{long, next}, time.Minute)
	if tk := tasks[next]; tk.Status != faastype.Completed {
		t.Fatalf("next task: %+v", tk)
	}
	if tk := tasks[long]; tk.Status != faastype.Failed || tk.Error == nil || tk.Error.Kind != faastype.KindCancelled {
		t.Fatalf("cancelled task: %+v", tk)
	}
	if s := pool.Stats(); s.Restarts < 1 {
		t.Fatalf("the cancelled task's sandbox was not replaced: %+v", s)
	}
}
