package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

func requeueEnqueue(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for i := range n {
		err := st.Enqueue(context.Background(), store.Task{ID: fmt.Sprintf("rq-%02d", i), FnPayload: "gAR9lC4=", ParamPayload: "gAR9lC4="})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRequeue(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 2}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		requeueEnqueue(t, st, 3)
		cs, err := st.Claim(ctx, "w1", 3, time.Hour)
		if err != nil || len(cs) != 3 {
			t.Fatalf("Claim = %v, %v", cs, err)
		}
		// rq-00 completed already, rq-01 is requeued, rq-02 is claimed under
		// a stale fence (nothing happens), an unknown id is ignored.
		done := store.Outcome{Status: faastype.Completed, Result: "gAR9lC4="}
		if ok, err := st.Complete(ctx, cs[0].Ref(), done); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		rq, fl, err := st.Requeue(ctx, []store.Ref{
			cs[0].Ref(), cs[1].Ref(), {TaskID: cs[2].TaskID, Owner: cs[2].Owner, Fence: cs[2].Fence + 7}, {TaskID: "nope", Fence: 1},
		})
		if err != nil || !slices.Equal(rq, []string{cs[1].TaskID}) || len(fl) != 0 {
			t.Fatalf("Requeue = %v, %v, %v", rq, fl, err)
		}
		if n, _ := st.LeaseCount(ctx); n != 1 {
			t.Fatalf("LeaseCount = %d, want 1 (rq-02 untouched)", n)
		}
		// The attempt counted; the late result of the requeued claim is stale.
		if ok, _ := st.Complete(ctx, cs[1].Ref(), done); ok {
			t.Fatal("late result of a requeued claim was accepted")
		}
		again, err := st.Claim(ctx, "w2", 1, time.Hour)
		if err != nil || len(again) != 1 || again[0].TaskID != cs[1].TaskID || again[0].Attempt != 2 {
			t.Fatalf("Claim after Requeue = %+v, %v", again, err)
		}
		// Second loss with MaxAttempts 2: FAILED, WORKER_LOST, announced.
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()
		ch, stop := w.Wait(cs[1].TaskID)
		defer stop()
		rq, fl, err = st.Requeue(ctx, []store.Ref{again[0].Ref()})
		if err != nil || len(rq) != 0 || !slices.Equal(fl, []string{cs[1].TaskID}) {
			t.Fatalf("second Requeue = %v, %v, %v", rq, fl, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("waiter not woken by the WORKER_LOST failure")
		}
		task, err := st.GetTask(ctx, cs[1].TaskID)
		if err != nil || task.Status != faastype.Failed || task.Error == nil || task.Error.Kind != faastype.KindWorkerLost || task.Result == "" {
			t.Fatalf("task = %+v, %v", task, err)
		}
		if rq, fl, err := st.Requeue(ctx, nil); rq != nil || fl != nil || err != nil {
			t.Fatalf("empty Requeue = %v, %v, %v", rq, fl, err)
		}
	})
}
