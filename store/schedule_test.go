package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Four dispatchers promote the same due tasks at once (each reads the due
// entries and their owners, then a script promotes those still due): each
// task reaches its tenant's queue once, and the counts add up.
func TestPromoteDueRacing(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		due := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		const n = 300
		for i := range n {
			tk := newTask(fmt.Sprintf("delayed-%03d", i))
			tk.Owner = []string{"", "alice", "bob"}[i%3]
			tk.RunAt = due.Add(time.Duration(i%7) * time.Millisecond)
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, _, err := st.PromoteDue(ctx, due.Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += p
				mu.Unlock()
			}()
		}
		wg.Wait()
		if total != n {
			t.Fatalf("promoted %d in all, want %d", total, n)
		}
		seen := map[string]bool{}
		for {
			cs, err := st.Claim(ctx, "w", 50, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) == 0 {
				break
			}
			for _, c := range cs {
				if seen[c.TaskID] {
					t.Fatalf("%s claimed twice", c.TaskID)
				}
				seen[c.TaskID] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("claimed %d, want %d", len(seen), n)
		}
		if d, _ := st.QueueDepth(ctx); d != 0 {
			t.Fatalf("queue depth %d after claiming everything", d)
		}
		if c, _ := st.ScheduledCount(ctx); c != 0 {
			t.Fatalf("scheduled count %d", c)
		}
		if n, _ := rdb.HLen(ctx, "faas:scheduled_n").Result(); n != 0 {
			t.Fatalf("scheduled counts left: %d fields", n)
		}
	})
}

// A delayed task waits QUEUED, out of the queue, until PromoteDue finds it
// due; then it is claimed like any other. Cancelling one takes it out of
// the scheduled set.
func TestDelayedTasks(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		due := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		later, cancelled, now := newTask(uuid.NewString()), newTask(uuid.NewString()), newTask(uuid.NewString())
		later.RunAt, cancelled.RunAt = due, due.Add(time.Minute)
		for _, tk := range []store.Task{later, cancelled, now} {
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		ts, err := st.TaskStatus(ctx, later.ID)
		if err != nil || ts.Status != faastype.Queued || !ts.RunAt.Equal(due) {
			t.Fatalf("TaskStatus = %+v, %v; want QUEUED due %v", ts, err, due)
		}
		if n, _ := st.ScheduledCount(ctx); n != 2 {
			t.Fatalf("ScheduledCount = %d, want 2", n)
		}
		// Only the undelayed task is in the queue.
		cs, err := st.Claim(ctx, "w", 10, time.Minute)
		if err != nil || len(cs) != 1 || cs[0].TaskID != now.ID {
			t.Fatalf("Claim = %+v, %v; want only %s", cs, err, now.ID)
		}
		promoted, next, err := st.PromoteDue(ctx, due.Add(-time.Second))
		if err != nil || promoted != 0 || !next.Equal(due) {
			t.Fatalf("PromoteDue before due = %d, %v, %v; want 0, %v", promoted, next, err, due)
		}
		if _, err := st.Cancel(ctx, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		promoted, next, err = st.PromoteDue(ctx, due.Add(2*time.Minute))
		if err != nil || promoted != 1 || !next.IsZero() {
			t.Fatalf("PromoteDue after due = %d, %v, %v; want 1 and none left", promoted, next, err)
		}
		cs, err = st.Claim(ctx, "w", 10, time.Minute)
		if err != nil || len(cs) != 1 || cs[0].TaskID != later.ID {
			t.Fatalf("Claim after promotion = %+v, %v; want %s", cs, err, later.ID)
		}
		if n, _ := rdb.HLen(ctx, "faas:scheduled_n").Result(); n != 0 {
			t.Fatalf("scheduled counts left: %d fields", n)
		}
		got, err := st.GetTask(ctx, cancelled.ID)
		if err != nil || got.Status != faastype.Failed || got.Error.Kind != faastype.KindCancelled || !got.RunAt.Equal(due.Add(time.Minute)) {
			t.Fatalf("cancelled delayed task: %+v %v", got, err)
		}
	})
}

// A queue cap counts a tenant's delayed tasks with its queued ones.
func TestQueueCapCountsDelayedTasks(t *testing.T) {
	eachBackend(t, store.Options{MaxQueued: 2}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		for i := range 2 {
			tk := newTask(uuid.NewString())
			tk.Owner, tk.RunAt = "acme", time.Now().Add(time.Duration(i+1)*time.Hour)
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		tk := newTask(uuid.NewString())
		tk.Owner = "acme"
		if err := st.Enqueue(ctx, tk); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("third task of a tenant with 2 delayed under a cap of 2: %v, want ErrQueueFull", err)
		}
		tk.Owner = "other"
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatalf("another tenant: %v", err)
		}
	})
}

func failure(msg string) store.Outcome {
	return store.Outcome{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: msg}}
}

// A task with a retry policy is run again after a failure the policy
// retries, keeping each attempt's error, until it succeeds or runs out of
// retries; a failure the policy does not name is final at once; and the
// retries do not eat into the attempts a lost worker may cost.
func TestRetries(t *testing.T) {
	policy := &faastype.RetryPolicy{Max: 2, Backoff: "fixed", Base: 0, MaxDelay: 0, On: []string{"ValueError"}}
	eachBackend(t, store.Options{MaxAttempts: 1}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		run := func(id string) store.Claim {
			t.Helper()
			return claimOne(t, st, id)
		}
		complete := func(cl store.Claim, o store.Outcome) store.Outcome {
			t.Helper()
			o = store.RetryOutcome(cl, o, 0.5)
			if ok, err := st.Complete(ctx, cl.Ref(), o); err != nil || !ok {
				t.Fatalf("Complete: %v %v", ok, err)
			}
			return o
		}

		// Exhausted: three attempts, two errors kept and the last final.
		tk := newTask(uuid.NewString())
		tk.Retry = policy
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		for attempt := 1; attempt <= 3; attempt++ {
			cl := run(tk.ID)
			if cl.Attempt != attempt || cl.Retried != attempt-1 || cl.Retry == nil || cl.Retry.Max != 2 {
				t.Fatalf("claim %d: attempt %d retried %d policy %+v", attempt, cl.Attempt, cl.Retried, cl.Retry)
			}
			o := complete(cl, failure("ValueError: try "+string(rune('0'+attempt))))
			if o.Retry != (attempt < 3) {
				t.Fatalf("attempt %d: Retry = %v", attempt, o.Retry)
			}
			got, _ := st.GetTask(ctx, tk.ID)
			if want := map[bool]faastype.Status{true: faastype.Running, false: faastype.Failed}[attempt < 3]; got.Status != want {
				t.Fatalf("after attempt %d: %s, want %s", attempt, got.Status, want)
			}
		}
		got, err := st.GetTask(ctx, tk.ID)
		if err != nil || got.Attempts != 3 || len(got.Errors) != 2 || got.Errors[1].Attempt != 2 ||
			got.Errors[1].Error.Message != "ValueError: try 2" || got.Error.Message != "ValueError: try 3" {
			t.Fatalf("exhausted task: %+v %v", got, err)
		}

		// Another exception is not retried.
		tk = newTask(uuid.NewString())
		tk.Retry = policy
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		if o := complete(run(tk.ID), failure("KeyError: 'x'")); o.Retry {
			t.Fatal("a KeyError was retried under on=[ValueError]")
		}

		// A retried task then lost once fails WORKER_LOST only then (max
		// attempts 1 counts the lost run, not the retried ones), and a
		// success after a retry completes it with the earlier error kept.
		tk = newTask(uuid.NewString())
		tk.Retry = policy
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		complete(run(tk.ID), failure("ValueError: once"))
		cl := run(tk.ID)
		if ok, err := st.Complete(ctx, cl.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}); err != nil || !ok {
			t.Fatalf("Complete: %v %v", ok, err)
		}
		got, _ = st.GetTask(ctx, tk.ID)
		if got.Status != faastype.Completed || len(got.Errors) != 1 || got.Attempts != 2 {
			t.Fatalf("retried then completed: %+v", got)
		}

		// A delayed retry waits in the scheduled set.
		tk = newTask(uuid.NewString())
		tk.Retry = &faastype.RetryPolicy{Max: 1, Backoff: "fixed", Base: time.Hour, MaxDelay: time.Hour}
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		o := complete(run(tk.ID), failure("RuntimeError: later"))
		if !o.Retry || o.RetryDelay != time.Hour {
			t.Fatalf("outcome %+v, want a retry in 1h", o)
		}
		ts, _ := st.TaskStatus(ctx, tk.ID)
		if ts.Status != faastype.Running || time.Until(ts.NextAttemptAt) < 59*time.Minute {
			t.Fatalf("waiting retry: %+v", ts)
		}
		if cs, _ := st.Claim(ctx, "w", 5, time.Minute); len(cs) != 0 {
			t.Fatalf("a task waiting an hour for its retry was claimed: %+v", cs)
		}
		if n, _, err := st.PromoteDue(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("PromoteDue: %d %v", n, err)
		}
		cl = run(tk.ID)
		if ts, _ := st.TaskStatus(ctx, tk.ID); !ts.NextAttemptAt.IsZero() || cl.Attempt != 2 {
			t.Fatalf("claimed retry: %+v, attempt %d", ts, cl.Attempt)
		}
		// Its worker lost on attempt 2: with 2 attempts allowed to lost
		// workers, the retried attempt does not count, so it is requeued.
		lenient := store.New(rdb, store.Options{MaxAttempts: 2})
		if requeued, _, err := lenient.ReapExpired(ctx, time.Now().Add(2*time.Hour)); err != nil || len(requeued) != 1 {
			t.Fatalf("ReapExpired: %v %v; want the task requeued", requeued, err)
		}
		st2, _ := st.Stats(ctx)
		if st2.Retried != 4 {
			t.Fatalf("Stats.Retried = %d, want 4", st2.Retried)
		}
	})
}
