package store_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Samples: one per gap whoever takes them, oldest first, bounded to the
// window, and they read back as written.
func TestSamples(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		t0 := time.UnixMilli(1_700_000_000_000)
		const gap, window = 10 * time.Second, time.Minute
		smp := func(at time.Time, completed int64) store.Sample {
			return store.Sample{At: at, Completed: completed, Failed: 1, Kinds: map[faastype.ErrorKind]int64{"TIMEOUT": 1},
				Latency: make([]uint64, len(store.HistogramBuckets)+1), QueueDepth: 3}
		}
		for i, c := range []struct {
			at    time.Duration
			added bool
		}{
			{0, true}, {5 * time.Second, false}, {10 * time.Second, true}, {9 * time.Second, false}, // a clock behind
			{25 * time.Second, true},
		} {
			added, err := st.AddSample(ctx, smp(t0.Add(c.at), int64(i)), gap, window)
			if err != nil || added != c.added {
				t.Fatalf("sample %d: added %v, %v", i, added, err)
			}
		}
		got, err := st.Samples(ctx)
		if err != nil || len(got) != 3 {
			t.Fatalf("%d samples, %v", len(got), err)
		}
		if !got[0].At.Equal(t0) || got[1].Completed != 2 || got[2].Completed != 4 || got[2].Kinds["TIMEOUT"] != 1 ||
			got[2].QueueDepth != 3 || len(got[2].Latency) != len(store.HistogramBuckets)+1 {
			t.Fatalf("samples: %+v", got)
		}
		for i := range 20 {
			if _, err := st.AddSample(ctx, smp(t0.Add(time.Minute+time.Duration(i)*gap), 0), gap, window); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := st.Samples(ctx); len(got) != 8 { // window/gap + 2
			t.Fatalf("%d samples kept", len(got))
		}
		if ttl := rdb.PTTL(ctx, "faas:samples").Val(); ttl <= 0 || ttl > 2*window {
			t.Fatalf("ttl %v", ttl)
		}
	})
}

// TenantLoads lists the tenants with work, the most queued first.
func TestTenantLoads(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		if loads, err := st.TenantLoads(ctx); err != nil || len(loads) != 0 {
			t.Fatalf("empty: %+v %v", loads, err)
		}
		enqueueFor(t, st, "", 1)
		enqueueFor(t, st, "acme", 3)
		enqueueFor(t, st, "beta", 2)
		later := newTask("later")
		later.Owner = "gamma"
		later.RunAt = time.Now().Add(time.Hour)
		if err := st.Enqueue(ctx, later); err != nil {
			t.Fatal(err)
		}
		claimN(t, st, 2) // round robin: one of two tenants each
		loads, err := st.TenantLoads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var queued, running int64
		byName := map[string]store.TenantLoad{}
		for i, l := range loads {
			queued += l.Queued
			running += l.Running
			byName[l.Tenant] = l
			if i > 0 && loads[i-1].Queued < l.Queued {
				t.Errorf("not sorted: %+v", loads)
			}
		}
		if queued != 4 || running != 2 || byName["gamma"].Scheduled != 1 || byName["gamma"].Queued != 0 ||
			byName["acme"].Queued+byName["acme"].Running != 3 || byName["beta"].Queued+byName["beta"].Running != 2 {
			t.Fatalf("loads: %+v", loads)
		}
		depth, _ := st.QueueDepth(ctx)
		if depth != queued {
			t.Fatalf("queue depth %d, loads sum to %d", depth, queued)
		}
	})
}
