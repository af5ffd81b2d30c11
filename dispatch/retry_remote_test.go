package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/wire"
)

// The push and pull modes record a worker's FAILED result with a bare
// claim (id and fence): the task's retry policy applies all the same, from
// the tracked claim, and from the store for a claim this dispatcher does
// not track (adopted after a restart).
func TestRemoteResultsApplyRetryPolicies(t *testing.T) {
	st := store.New(redistest.StartMini(t), store.Options{})
	ctx := context.Background()
	c, err := NewCore(Config{Store: st, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fused, untracked bool
	}{{false, false}, {true, false}, {true, true}} {
		fused := tc.fused
		id := uuid.NewString()
		tk := store.Task{ID: id, Owner: "t-" + uuid.NewString()[:8], FunctionID: "f", FnPayload: "gAROLg==", ParamPayload: "gAROLg==",
			Retry: &faastype.RetryPolicy{Max: 3, Backoff: "fixed"}}
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		cls, err := c.ClaimFor(ctx, "worker-1", 1)
		if err != nil || len(cls) != 1 || cls[0].Retry == nil {
			t.Fatalf("ClaimFor = %+v %v", cls, err)
		}
		if !tc.untracked {
			c.TrackFor(cls[0], "worker-1", nil)
		}
		res := &faastype.Result{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "ValueError: x"}}
		r := wire.Result{ID: id, Fence: cls[0].Fence, Result: res}
		if fused {
			// pull.go:340
			if _, _, err := c.CompleteAndClaimOnce(ctx, store.Claim{TaskID: r.ID, Fence: r.Fence}, r.Result, "worker-1", 0); err != nil {
				t.Fatal(err)
			}
		} else {
			done := make(chan struct{})
			comp := newCompleter(ctx, c, 1, func(sessKey, wire.Ack) { close(done) })
			comp.submit(sessKey{}, r)
			<-done
			comp.close()
		}
		got, _ := st.GetTask(ctx, id)
		if got.Status != faastype.Running || len(got.Errors) != 1 {
			t.Errorf("%+v: a FAILED result of a task with retries max 3 left it %s with %d errors: its retry policy was not applied",
				tc, got.Status, len(got.Errors))
		}
		// Claimed again at once (no back-off): out of the way of the next case.
		if cls, err := c.ClaimFor(ctx, "worker-1", 1); err != nil || len(cls) != 1 || cls[0].TaskID != id {
			t.Fatalf("the retried task is not runnable again: %+v %v", cls, err)
		}
	}
}
