package dispatch

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// A worker's adoption report and its results name a claim by task and
// fence only: the dispatcher finds the owner (the tracked claim's, or the
// store's), so a tenant's task is renewed, released and completed like the
// default tenant's.
func TestBareClaimsOfATenant(t *testing.T) {
	st := store.New(redistest.StartMini(t), store.Options{})
	ctx := context.Background()
	c, err := NewCore(Config{Store: st, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"", "acme"} {
		id := uuid.NewString()
		if err := st.Enqueue(ctx, store.Task{ID: id, Owner: owner, FunctionID: "f", FnPayload: "gAROLg==", ParamPayload: "gAROLg=="}); err != nil {
			t.Fatal(err)
		}
		cls, err := c.ClaimFor(ctx, "worker-1", 1)
		if err != nil || len(cls) != 1 || cls[0].Owner != owner {
			t.Fatalf("ClaimFor = %+v %v", cls, err)
		}
		bare := store.Claim{TaskID: id, Fence: cls[0].Fence}
		if lost, err := c.Renew(ctx, "worker-1", []store.Claim{bare}); err != nil || len(lost) != 0 {
			t.Fatalf("owner %q: renewing the bare claim lost %v (%v)", owner, lost, err)
		}
		stale := store.Claim{TaskID: id, Fence: cls[0].Fence + 1}
		if lost, err := c.Renew(ctx, "worker-1", []store.Claim{stale}); err != nil || !slices.Equal(lost, []string{id}) {
			t.Fatalf("owner %q: a wrong fence was renewed: lost %v (%v)", owner, lost, err)
		}
		c.Release(ctx, bare)
		again, err := c.ClaimFor(ctx, "worker-1", 1)
		if err != nil || len(again) != 1 || again[0].TaskID != id {
			t.Fatalf("owner %q: the released task is not claimed again: %+v %v", owner, again, err)
		}
	}
}
