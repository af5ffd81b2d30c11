package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Every way a task becomes final queues its webhook once, in the same
// script: completion, cancellation (QUEUED and RUNNING) and a lost worker
// (reap, requeue); a task without a callback queues nothing.
func TestFinalTasksQueueTheirWebhook(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 1}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		mk := func(cb string) store.Task {
			tk := newTask(uuid.NewString())
			tk.CallbackURL = cb
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
			return tk
		}
		plain := mk("")
		done := mk("https://example.com/a")
		reaped := mk("https://example.com/b")
		requeued := mk("https://example.com/c")
		running := mk("https://example.com/d")
		cs, err := st.Claim(ctx, "w", 5, time.Minute)
		if err != nil || len(cs) != 5 {
			t.Fatalf("Claim = %d, %v", len(cs), err)
		}
		claim := map[string]store.Claim{}
		for _, c := range cs {
			claim[c.TaskID] = c
		}
		queued := mk("https://example.com/e")
		if ok, err := st.Complete(ctx, claim[plain.ID].Ref(), completed("cg==")); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, err := st.Complete(ctx, claim[done.ID].Ref(), completed("cg==")); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if _, _, err := st.Requeue(ctx, []store.Ref{claim[requeued.ID].Ref()}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{running.ID, queued.ID} {
			if _, err := st.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// Only reaped's lease is left; expire it.
		if _, _, err := st.ReapExpired(ctx, time.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		ids, err := rdb.ZRange(ctx, "faas:hooks", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{done.ID: true, reaped.ID: true, requeued.ID: true, running.ID: true, queued.ID: true}
		if len(ids) != len(want) {
			t.Fatalf("hooks set = %v, want the 5 tasks with a callback", ids)
		}
		for _, id := range ids {
			if !want[id] {
				t.Fatalf("hooks set holds %s, which has no callback", id)
			}
			got, err := st.GetTask(ctx, id)
			if err != nil || !got.Status.Final() || got.CallbackURL == "" || got.Callback == nil ||
				got.Callback.State != store.CallbackPending || got.Callback.Attempts != 0 {
				t.Fatalf("task %s = %+v, %+v, %v; want final with its callback pending", id, got, got.Callback, err)
			}
		}
		got, err := st.GetTask(ctx, plain.ID)
		if err != nil || got.Callback != nil || got.CallbackURL != "" {
			t.Fatalf("plain task = %+v, %v; want no callback", got, err)
		}
		if n, _ := st.PendingDeliveries(ctx); n != 5 {
			t.Fatalf("PendingDeliveries = %d, want 5", n)
		}
	})
}

func finalWithCallback(t *testing.T, st *store.Store) string {
	t.Helper()
	ctx := testCtx(t)
	tk := newTask(uuid.NewString())
	tk.CallbackURL = "https://example.com/hook"
	if err := st.Enqueue(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Cancel(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

// Four deliverers claim the same due deliveries at once (each reads the due
// entries, then a script claims those still due): each delivery is
// claimed once, as attempt 1.
func TestDeliveryClaimsRacing(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		const n = 60
		for range n {
			finalWithCallback(t, st)
		}
		now := time.Now().Add(time.Second)
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ds, _, err := st.ClaimDeliveries(ctx, now, time.Minute, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						got[d.TaskID]++
						if d.Attempt != 1 {
							t.Errorf("%s claimed as attempt %d", d.TaskID, d.Attempt)
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) != n {
			t.Fatalf("%d deliveries claimed, want %d", len(got), n)
		}
		for id, c := range got {
			if c != 1 {
				t.Fatalf("%s claimed %d times", id, c)
			}
		}
	})
}

// One deliverer at a time: a claimed delivery is not claimed again until
// its lease expires; then another deliverer takes it, with the next
// attempt number, and the first one's late outcome is rejected.
func TestDeliveryClaimsAndLeases(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		id := finalWithCallback(t, st)
		now := time.Now()
		a, next, err := st.ClaimDeliveries(ctx, now, 10*time.Second, 10)
		if err != nil || len(a) != 1 || a[0].TaskID != id || a[0].Attempt != 1 {
			t.Fatalf("first claim = %+v, %v", a, err)
		}
		if want := now.Add(10 * time.Second).Truncate(time.Millisecond); !next.Equal(want) {
			t.Fatalf("next due = %v, want the lease expiry %v", next, want)
		}
		b, _, err := st.ClaimDeliveries(ctx, now.Add(5*time.Second), 10*time.Second, 10)
		if err != nil || len(b) != 0 {
			t.Fatalf("claim during the lease = %+v, %v; want none", b, err)
		}
		// The first deliverer is gone; its lease expires.
		c, _, err := st.ClaimDeliveries(ctx, now.Add(11*time.Second), 10*time.Second, 10)
		if err != nil || len(c) != 1 || c[0].Attempt != 2 {
			t.Fatalf("claim after the lease = %+v, %v; want attempt 2", c, err)
		}
		if ok, err := st.RecordDelivery(ctx, a[0], store.DeliveryRecord{Outcome: store.Delivered}); ok || err != nil {
			t.Fatalf("stale record = %v, %v; want rejected", ok, err)
		}
		at := now.Add(12 * time.Second).Truncate(time.Millisecond)
		if ok, err := st.RecordDelivery(ctx, c[0], store.DeliveryRecord{Outcome: store.RetryDelivery, At: at,
			NextAt: at.Add(time.Second), Error: "HTTP 503"}); !ok || err != nil {
			t.Fatalf("record retry = %v, %v", ok, err)
		}
		got, _ := st.GetTask(ctx, id)
		if cb := got.Callback; cb == nil || cb.State != store.CallbackPending || cb.Attempts != 2 || cb.Error != "HTTP 503" ||
			!cb.At.Equal(at) || !cb.NextAt.Equal(at.Add(time.Second)) {
			t.Fatalf("callback after a failed attempt = %+v", got.Callback)
		}
		if d, _, _ := st.ClaimDeliveries(ctx, at.Add(500*time.Millisecond), 10*time.Second, 10); len(d) != 0 {
			t.Fatalf("claimed before the retry was due: %+v", d)
		}
		d, _, err := st.ClaimDeliveries(ctx, at.Add(time.Second), 10*time.Second, 10)
		if err != nil || len(d) != 1 || d[0].Attempt != 3 {
			t.Fatalf("claim of the retry = %+v, %v", d, err)
		}
		if ok, err := st.RecordDelivery(ctx, d[0], store.DeliveryRecord{Outcome: store.Delivered, At: at.Add(2 * time.Second)}); !ok || err != nil {
			t.Fatalf("record delivered = %v, %v", ok, err)
		}
		got, _ = st.GetTask(ctx, id)
		if cb := got.Callback; cb == nil || cb.State != store.CallbackDelivered || cb.Attempts != 3 || !cb.NextAt.IsZero() {
			t.Fatalf("callback after delivery = %+v", got.Callback)
		}
		if n, _ := st.PendingDeliveries(ctx); n != 0 {
			t.Fatalf("PendingDeliveries = %d after delivery", n)
		}
		// Delivered once: a second record of the same claim is rejected.
		if ok, _ := st.RecordDelivery(ctx, d[0], store.DeliveryRecord{Outcome: store.Delivered}); ok {
			t.Fatal("recorded a delivered webhook twice")
		}
		stats, err := st.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w := stats.Webhooks; w["delivered"] != 1 || w["failed"] != 1 || w["undeliverable"] != 0 || stats.WebhooksPending != 0 {
			t.Fatalf("webhook stats = %v, pending %d", w, stats.WebhooksPending)
		}
	})
}

// Giving up: the webhook leaves the queue, the task says undeliverable
// with the last error, and the metrics count it.
func TestDeliveryGivesUp(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		id := finalWithCallback(t, st)
		d, _, err := st.ClaimDeliveries(ctx, time.Now(), time.Minute, 1)
		if err != nil || len(d) != 1 {
			t.Fatal(d, err)
		}
		if ok, err := st.RecordDelivery(ctx, d[0], store.DeliveryRecord{Outcome: store.Undeliverable,
			Error: "dial tcp: connection refused"}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		got, _ := st.GetTask(ctx, id)
		if cb := got.Callback; cb == nil || cb.State != store.CallbackUndeliverable || cb.Error != "dial tcp: connection refused" {
			t.Fatalf("callback = %+v", got.Callback)
		}
		if got.Status != faastype.Failed {
			t.Fatalf("status = %s", got.Status)
		}
		if d, _, _ := st.ClaimDeliveries(ctx, time.Now().Add(time.Hour), time.Minute, 1); len(d) != 0 {
			t.Fatalf("an undeliverable webhook was claimed again: %+v", d)
		}
		stats, _ := st.Stats(ctx)
		if w := stats.Webhooks; w["failed"] != 1 || w["undeliverable"] != 1 || w["delivered"] != 0 {
			t.Fatalf("webhook stats = %v", w)
		}
	})
}

// An entry whose task expired (result TTL) is dropped at the next claim.
func TestDeliveryOfAGoneTaskIsDropped(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		id := finalWithCallback(t, st)
		rdb.Del(ctx, id)
		if d, next, err := st.ClaimDeliveries(ctx, time.Now(), time.Minute, 10); err != nil || len(d) != 0 || !next.IsZero() {
			t.Fatalf("ClaimDeliveries = %+v, %v, %v; want nothing left", d, next, err)
		}
	})
}
