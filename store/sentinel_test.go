package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// Through Redis Sentinel, the store follows the primary: after the primary
// is SIGKILLed and the sentinels promote its replica, the same Store (and
// its client) finds the new primary by itself, every write the replica had
// acknowledged (WAIT) is there, leases and fences included, the scripts
// load themselves on the new primary (NOSCRIPT), a long-poll waiter's
// subscription comes back, and each task is recorded exactly once.
func TestStoreThroughSentinelFailover(t *testing.T) {
	sen := redistest.StartSentinel(t, true)
	rdb := sen.Client(t)
	st := store.New(rdb, store.Options{MaxAttempts: 3})
	ctx := testCtx(t)
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = uuid.NewString()
		if err := st.Enqueue(ctx, newTask(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	cls, err := st.Claim(ctx, "w", 5, time.Minute)
	if err != nil || len(cls) != 5 {
		t.Fatal(cls, err)
	}
	done := store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}
	for _, cl := range cls[:3] {
		if ok, err := st.Complete(ctx, cl.Ref(), done); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}

	newPrimary := sen.KillPrimary(t)
	t.Logf("promoted %s", newPrimary)
	deadline := time.Now().Add(30 * time.Second)
	for st.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the store did not reach the new primary")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w := st.NewWaiter(ctx)
	defer w.Close()
	select {
	case <-w.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter did not subscribe on the new primary")
	}

	// Everything acknowledged before the kill is there.
	claimed := map[string]faastype.Status{}
	for i, cl := range cls {
		claimed[cl.TaskID] = faastype.Running
		if i < 3 {
			claimed[cl.TaskID] = faastype.Completed
		}
	}
	for _, id := range ids {
		want, ok := claimed[id]
		if !ok {
			want = faastype.Queued
		}
		mustStatus(t, st, id, want)
	}
	// The leases held before the failover are still good, and only once.
	for _, cl := range cls[3:] {
		wk, stop := w.WaitTask(cl.TaskID)
		if ok, err := st.Complete(ctx, cl.Ref(), done); err != nil || !ok {
			t.Fatalf("completing a claim made before the failover: %v %v", ok, err)
		}
		select {
		case <-wk.C:
		case <-time.After(10 * time.Second):
			t.Fatal("the waiter was not woken after the failover")
		}
		stop()
		if ok, _ := st.Complete(ctx, cl.Ref(), done); ok {
			t.Fatal("a repeated result was recorded")
		}
	}
	for {
		more, err := st.Claim(ctx, "w2", 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(more) == 0 {
			break
		}
		for _, cl := range more {
			if ok, err := st.Complete(ctx, cl.Ref(), done); err != nil || !ok {
				t.Fatal(ok, err)
			}
		}
	}
	for _, id := range ids {
		mustStatus(t, st, id, faastype.Completed)
	}
	s, err := st.Stats(ctx)
	if err != nil || s.Finished[faastype.Completed] != int64(len(ids)) || s.Submitted != int64(len(ids)) {
		t.Fatalf("Stats after the failover: %+v %v", s, err)
	}
}

// A claim the promoted replica never saw (a failover right after it) is
// re-granted with a higher fence, so the first run's result is rejected
// and the second's recorded. Simulated here by putting the task back as
// the replica would have it: queued, unleased, with the older fence.
func TestFenceGrowsPastALostClaim(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		id := enqueueN(t, st, 1)[0]
		lost := claimOne(t, st, id)
		// What the replica had: the task as it was before the claim.
		rdb.HSet(ctx, id, "status", "QUEUED", "fence", 0, "attempts", 0)
		rdb.HDel(ctx, id, "worker", "started_at")
		rdb.ZRem(ctx, "faas:leases", id)
		rdb.HDel(ctx, "faas:running", "")
		rdb.RPush(ctx, "faas:queue", id)
		time.Sleep(5 * time.Millisecond)
		again := claimOne(t, st, id)
		if again.Fence <= lost.Fence {
			t.Fatalf("the claim after the loss has fence %d, the lost one had %d", again.Fence, lost.Fence)
		}
		done := store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}
		if ok, err := st.Complete(ctx, lost.Ref(), done); err != nil || ok {
			t.Fatalf("the lost claim's result was recorded: %v %v", ok, err)
		}
		if ok, err := st.Complete(ctx, again.Ref(), done); err != nil || !ok {
			t.Fatalf("the new claim's result was refused: %v %v", ok, err)
		}
	})
}
