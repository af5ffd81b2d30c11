package dispatch

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
)

func TestMain(m *testing.M) {
	runtime.RunChildIfRequested()
	os.Exit(m.Run())
}

func TestRunLocal(t *testing.T) {
	for _, backend := range []struct {
		name  string
		start func(testing.TB) redis.UniversalClient
	}{{"redis-server", redistest.Start}, {"miniredis", redistest.StartMini}} {
		t.Run(backend.name, func(t *testing.T) {
			st := store.New(backend.start(t), store.Options{})
			pool, err := runtime.NewPool(context.Background(), runtime.PoolConfig{Size: 2, Limits: faastype.Limits{Timeout: 2 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			pk := pyfixture.Pickles(t, "def sq(x): return x * x\ndef boom(): raise KeyError('nope')",
				"sq", "boom", "((9,), {})", "((), {})")
			// Some tasks are queued before the dispatcher starts: the queue,
			// not the notification, is what it relies on.
			var ids []string
			for i := 0; i < 5; i++ {
				ids = append(ids, storetest.Enqueue(t, st, pk[0], pk[2]))
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := RunLocal(ctx, Config{Store: st, Poll: 5 * time.Second}, pool); err != nil {
					t.Error(err)
				}
			}()
			for i := 0; i < 20; i++ {
				ids = append(ids, storetest.Enqueue(t, st, pk[0], pk[2]))
			}
			failID := storetest.Enqueue(t, st, pk[1], pk[3])
			tasks := storetest.WaitFinal(t, st, append(ids, failID), 30*time.Second)
			for _, id := range ids {
				task := tasks[id]
				b, _ := base64.StdEncoding.DecodeString(task.Result)
				// pickle.dumps(81, protocol=4) is \x80\x04K\x51.
				if task.Status != "COMPLETED" || fmt.Sprintf("%x", b) != "80044b512e" || task.Attempts != 1 {
					t.Errorf("task %s: %+v result %x", id, task, b)
				}
			}
			if f := tasks[failID]; f.Status != "FAILED" || f.Error == nil || f.Error.Kind != faastype.KindUserException {
				t.Errorf("failing task: %+v", f)
			}
			cancel()
			wg.Wait()
		})
	}
}

// A RUNNING task that is cancelled is stopped at once: its sandbox is
// killed and replaced (the lease is long, so only the cancel notification
// can be what stops it), and the next task runs on the replacement.
func TestCancelRunningTask(t *testing.T) {
	for _, backend := range redistest.Backends {
		t.Run(backend.Name, func(t *testing.T) {
			st := store.New(backend.Start(t), store.Options{})
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
			c, err := st.Cancel(context.Background(), long)
			if err != nil || c != (store.Cancellation{Cancelled: true, Was: faastype.Running}) {
				t.Fatalf("Cancel = %+v, %v", c, err)
			}
			// The only sandbox was busy for 10 minutes: the next task runs
			// only if the cancelled one was stopped.
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
		})
	}
}

// At light load (one task at a time, both sandboxes idle) a task costs one
// claim and its completion (with the claim that goes with it): the idle
// sandboxes do not each try a claim of their own per announcement, which
// made three to four claim scripts per task before.
func TestLightLoadClaimsOncePerTask(t *testing.T) {
	rdb := redistest.Start(t)
	st := store.New(rdb, store.Options{})
	pool, err := runtime.NewPool(context.Background(), runtime.PoolConfig{Size: 2, Limits: faastype.Limits{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pk := pyfixture.Pickles(t, "def sq(x): return x * x", "sq", "((9,), {})")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := RunLocal(ctx, Config{Store: st, Poll: time.Minute, Lease: 10 * time.Minute}, pool); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	// The first task warms the sandboxes and the scripts up.
	storetest.WaitFinal(t, st, []string{storetest.Enqueue(t, st, pk[0], pk[1])}, time.Minute)
	time.Sleep(100 * time.Millisecond)
	if err := redisinfo.ResetStat(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	const n = 12
	for range n {
		storetest.WaitFinal(t, st, []string{storetest.Enqueue(t, st, pk[0], pk[1])}, time.Minute)
		time.Sleep(20 * time.Millisecond) // the dispatcher is idle again
	}
	cmds, err := redisinfo.Commands(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	scripts := int(cmds["evalsha"].Calls)
	// Per task: the enqueue, one claim, the completion (and its claim);
	// a few more for the background loops (reap, promote) in a second.
	if scripts < 3*n || scripts > 3*n+4 {
		t.Fatalf("%d script calls for %d tasks one at a time; want 3 per task (at most 4 more)", scripts, n)
	}
}
