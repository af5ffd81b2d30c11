package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

const (
	fnPayload    = "gASVHAAAAAAAAACMBG1hdGiUjARzcXJ0lJOULg==" // math.sqrt, protocol 4
	paramPayload = "gASVCgAAAAAAAAApfZSGlC4="                 // ((), {})
)

func newTask(id string) store.Task {
	return store.Task{
		ID:           id,
		FunctionID:   "fn-" + id,
		FnPayload:    fnPayload,
		ParamPayload: paramPayload,
		FnHash:       "hash-" + id,
		Isolation:    faastype.Fresh,
	}
}

func enqueueN(t *testing.T, st *store.Store, n int) []string {
	t.Helper()
	ctx := testCtx(t)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%05d", i)
		if err := st.Enqueue(ctx, newTask(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func claimIDs(cs []store.Claim) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.TaskID
	}
	return ids
}

func mustStatus(t *testing.T, st *store.Store, id string, want faastype.Status) {
	t.Helper()
	got, err := st.Status(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("status of %s = %s, want %s", id, got, want)
	}
}

func TestFunctions(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		id := uuid.NewString()
		created := time.UnixMilli(1_700_000_000_123)
		in := store.Function{ID: id, Name: "sqrt", Payload: fnPayload, Isolation: faastype.Fresh, CreatedAt: created}
		if err := st.PutFunction(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetFunction(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantHash := payloadHash(t, fnPayload)
		want := in
		want.Hash = wantHash
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetFunction = %+v, want %+v", got, want)
		}
		// Course-compatible fields, readable by the course tools.
		h, err := rdb.HGetAll(ctx, id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["fn_name"] != "sqrt" || h["fn_payload"] != fnPayload {
			t.Fatalf("hash = %v", h)
		}
		if err := st.PutFunction(ctx, in); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second PutFunction: err = %v, want ErrExists", err)
		}
		if _, err := st.GetFunction(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown function: err = %v, want ErrNotFound", err)
		}

		// A function written by the course tools: only fn_name, fn_payload
		// (with codecs newlines).
		courseID := uuid.NewString()
		wrapped := fnPayload[:20] + "\n" + fnPayload[20:] + "\n"
		if err := rdb.HSet(ctx, courseID, "fn_name", "sqrt", "fn_payload", wrapped).Err(); err != nil {
			t.Fatal(err)
		}
		cf, err := st.GetFunction(ctx, courseID)
		if err != nil {
			t.Fatal(err)
		}
		if cf.Hash != wantHash || cf.Isolation != faastype.Warm || cf.Payload != wrapped {
			t.Fatalf("course function = %+v", cf)
		}

		// Functions and tasks share the key space; neither reads as the other.
		if err := st.Enqueue(ctx, newTask("t1")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetFunction(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetFunction(task id): err = %v, want ErrNotFound", err)
		}
		if _, err := st.GetTask(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetTask(function id): err = %v, want ErrNotFound", err)
		}
		if _, err := st.Status(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Status(function id): err = %v, want ErrNotFound", err)
		}
	})
}

func TestEnqueue(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids, stop := st.SubscribeTasks(ctx)
		defer stop()

		in := newTask("t1")
		in.Status = faastype.Completed // ignored
		in.CreatedAt = time.UnixMilli(1_700_000_000_000)
		if err := st.Enqueue(ctx, in); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-ids:
			if id != "t1" {
				t.Fatalf("published %q, want t1", id)
			}
		case <-ctx.Done():
			t.Fatal("no id published on Tasks")
		}

		got, err := st.GetTask(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		want := store.Task{
			ID: "t1", FunctionID: "fn-t1", FnPayload: fnPayload, ParamPayload: paramPayload,
			FnHash: "hash-t1", Isolation: faastype.Fresh, Status: faastype.Queued,
			CreatedAt: in.CreatedAt,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("GetTask =\n%+v\nwant\n%+v", got, want)
		}
		sum, err := st.GetTaskSummary(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if sum.FnPayload != "" || sum.ParamPayload != "" || sum.Status != faastype.Queued || sum.FunctionID != "fn-t1" {
			t.Fatalf("GetTaskSummary = %+v", sum)
		}
		h, err := rdb.HGetAll(ctx, "t1").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"fn_payload", "param_payload", "status", "result"} {
			if _, ok := h[f]; !ok {
				t.Errorf("course field %q missing from task hash %v", f, h)
			}
		}
		if n, _ := st.QueueDepth(ctx); n != 1 {
			t.Fatalf("QueueDepth = %d, want 1", n)
		}
		if err := st.Enqueue(ctx, in); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second Enqueue: err = %v, want ErrExists", err)
		}
		if n, _ := st.QueueDepth(ctx); n != 1 {
			t.Fatalf("QueueDepth after duplicate = %d, want 1", n)
		}
		if _, err := st.GetTask(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetTask(unknown): err = %v", err)
		}
		if _, err := st.Status(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Status(unknown): err = %v", err)
		}
	})
}

func TestClaimOrder(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids := enqueueN(t, st, 5)
		for _, step := range []struct {
			n    int
			want []string
		}{
			{2, ids[0:2]},
			{0, nil},
			{1, ids[2:3]},
			{10, ids[3:5]}, // n > queue
			{3, nil},
		} {
			cs, err := st.Claim(ctx, "w1", step.n, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got := claimIDs(cs); !slices.Equal(got, step.want) && len(got)+len(step.want) > 0 {
				t.Fatalf("Claim(%d) = %v, want %v", step.n, got, step.want)
			}
		}
		if n, _ := st.LeaseCount(ctx); n != 5 {
			t.Fatalf("LeaseCount = %d, want 5", n)
		}
	})
}

func TestClaimRecordsTheClaim(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 1)
		before := time.Now().Add(-time.Second)
		cs, err := st.Claim(ctx, "w1", 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		want := store.Claim{
			TaskID: "task-00000", FunctionID: "fn-task-00000", FnPayload: fnPayload, ParamPayload: paramPayload,
			FnHash: "hash-task-00000", Isolation: faastype.Fresh, Attempt: 1,
		}
		// The fence is the claim's time in ms (or the last fence + 1).
		if len(cs) == 1 && (cs[0].Fence < before.UnixMilli() || cs[0].Fence > time.Now().UnixMilli()+1) {
			t.Fatalf("fence %d is not the claim's time", cs[0].Fence)
		}
		if len(cs) == 1 {
			want.Fence = cs[0].Fence
		}
		if len(cs) != 1 || !reflect.DeepEqual(cs[0], want) {
			t.Fatalf("Claim = %+v, want [%+v]", cs, want)
		}
		task, err := st.GetTask(ctx, "task-00000")
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != faastype.Running || task.Worker != "w1" || task.Attempts != 1 || task.Fence != cs[0].Fence ||
			task.StartedAt.Before(before) || task.Result != "" {
			t.Fatalf("task after claim = %+v", task)
		}
		score, err := rdb.ZScore(ctx, "faas:leases", "task-00000").Result()
		if err != nil {
			t.Fatal(err)
		}
		if exp := time.UnixMilli(int64(score)); exp.Before(time.Now().Add(30*time.Second)) || exp.After(time.Now().Add(2*time.Minute)) {
			t.Fatalf("lease expiry %v is not about a minute from now", exp)
		}
	})
}

func TestClaimErrors(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		if _, err := st.Claim(ctx, "w", 1, 0); err == nil {
			t.Fatal("Claim with zero lease: no error")
		}
		if _, err := st.Renew(ctx, "w", []store.Ref{{TaskID: "x", Fence: 1}}, -time.Second); err == nil {
			t.Fatal("Renew with negative lease: no error")
		}
	})
}

func TestConcurrentClaimersNeverShareATask(t *testing.T) {
	const claimers, perClaimer = 8, 500
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids := enqueueN(t, st, claimers*perClaimer)
		type result struct {
			ids []string
			err error
		}
		results := make(chan result, claimers)
		for w := range claimers {
			go func() {
				var got []string
				for {
					cs, err := st.Claim(ctx, fmt.Sprintf("w%d", w), 1+len(got)%7, time.Minute)
					if err != nil {
						results <- result{got, err}
						return
					}
					if len(cs) == 0 {
						results <- result{got, nil}
						return
					}
					got = append(got, claimIDs(cs)...)
				}
			}()
		}
		seen := make(map[string]int)
		for range claimers {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			for _, id := range r.ids {
				seen[id]++
			}
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("task %s claimed %d times", id, seen[id])
			}
		}
		if len(seen) != len(ids) {
			t.Errorf("claimed %d distinct ids, want %d", len(seen), len(ids))
		}
	})
}

func completed(result string) store.Outcome {
	return store.Outcome{
		Status: faastype.Completed, Result: result, Stdout: "out\n", Stderr: "err\n",
		Timings: &faastype.Timings{Run: 0.5, Total: 0.75},
	}
}

func TestComplete(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 1)
		cs, err := st.Claim(ctx, "w1", 1, time.Minute)
		if err != nil || len(cs) != 1 {
			t.Fatalf("Claim = %v, %v", cs, err)
		}
		c := cs[0]

		if ok, err := st.Complete(ctx, store.Ref{TaskID: c.TaskID, Owner: c.Owner, Fence: c.Fence + 1}, completed("AAAA")); ok || err != nil {
			t.Fatalf("Complete with a wrong fence = %v, %v; want false, nil", ok, err)
		}
		if ok, err := st.Complete(ctx, store.Ref{TaskID: c.TaskID, Owner: "mallory", Fence: c.Fence}, completed("AAAA")); ok || err != nil {
			t.Fatalf("Complete naming another owner = %v, %v; want false, nil", ok, err)
		}
		mustStatus(t, st, c.TaskID, faastype.Running)

		if ok, err := st.Complete(ctx, c.Ref(), completed("gANLKi4=")); !ok || err != nil {
			t.Fatalf("Complete by the holder = %v, %v; want true, nil", ok, err)
		}
		task, err := st.GetTask(ctx, c.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != faastype.Completed || task.Result != "gANLKi4=" || task.Stdout != "out\n" ||
			task.Stderr != "err\n" || task.Timings == nil || task.Timings.Total != 0.75 || task.Error != nil ||
			task.FinishedAt.IsZero() {
			t.Fatalf("task after Complete = %+v", task)
		}
		if n, _ := st.LeaseCount(ctx); n != 0 {
			t.Fatalf("LeaseCount after Complete = %d, want 0", n)
		}

		// A second result for the same claim is rejected and changes nothing.
		failed := store.Outcome{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindTimeout, Message: "x"}}
		if ok, err := st.Complete(ctx, c.Ref(), failed); ok || err != nil {
			t.Fatalf("second Complete = %v, %v; want false, nil", ok, err)
		}
		again, _ := st.GetTask(ctx, c.TaskID)
		if again.Status != faastype.Completed || again.Result != "gANLKi4=" {
			t.Fatalf("task changed by a rejected Complete: %+v", again)
		}

		if ok, err := st.Complete(ctx, store.Ref{TaskID: "unknown", Fence: 1}, completed("AAAA")); ok || err != nil {
			t.Fatalf("Complete(unknown) = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestCompleteRejectsInvalidOutcomes(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 1)
		cs, _ := st.Claim(ctx, "w1", 1, time.Minute)
		for _, o := range []store.Outcome{
			{Status: faastype.Running},
			{Status: ""},
			{Status: faastype.Failed}, // no Error
		} {
			if ok, err := st.Complete(ctx, cs[0].Ref(), o); ok || err == nil {
				t.Errorf("Complete(%+v) = %v, %v; want an error", o, ok, err)
			}
		}
		mustStatus(t, st, cs[0].TaskID, faastype.Running)
	})
}

func TestFailedOutcomeGetsAnExceptionPickle(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 2)
		cs, _ := st.Claim(ctx, "w1", 2, time.Minute)
		te := &faastype.TaskError{Kind: faastype.KindTimeout, Message: "task exceeded 30s", Traceback: "tb"}
		if ok, err := st.Complete(ctx, cs[0].Ref(), store.Outcome{Status: faastype.Failed, Error: te}); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		own := pickle.EncodeBase64(pickle.Exception("ValueError", "the user's own"))
		if ok, err := st.Complete(ctx, cs[1].Ref(), store.Outcome{Status: faastype.Failed, Error: te, Result: own}); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		t0, _ := st.GetTask(ctx, cs[0].TaskID)
		t1, _ := st.GetTask(ctx, cs[1].TaskID)
		if t0.Error == nil || *t0.Error != *te {
			t.Fatalf("Error = %+v, want %+v", t0.Error, te)
		}
		if t1.Result != own {
			t.Fatalf("a given result was replaced: %q", t1.Result)
		}
		got := pyfixture.LoadExceptions(t, []string{t0.Result})
		if got[0].Type != "TimeoutError" || got[0].Str != "task exceeded 30s" || !got[0].Raised {
			t.Fatalf("result loads as %+v", got[0])
		}
	})
}

func TestRenew(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 5)
		cs, err := st.Claim(ctx, "w1", 5, time.Second)
		if err != nil || len(cs) != 5 {
			t.Fatalf("Claim = %v, %v", cs, err)
		}
		// cs[0]: still held. cs[1]: completed. cs[2]: asked with a wrong fence.
		// cs[3]: reaped (its lease is pushed into the past first). cs[4]:
		// asked naming another owner.
		if ok, _ := st.Complete(ctx, cs[1].Ref(), completed("AAAA")); !ok {
			t.Fatal("Complete failed")
		}
		if err := rdb.ZAdd(ctx, "faas:leases", redis.Z{Score: 1, Member: cs[3].TaskID}).Err(); err != nil {
			t.Fatal(err)
		}
		if rq, _, err := st.ReapExpired(ctx, time.Now()); err != nil || !slices.Equal(rq, []string{cs[3].TaskID}) {
			t.Fatalf("ReapExpired = %v, %v", rq, err)
		}
		wrongOwner := cs[4].Ref()
		wrongOwner.Owner = "mallory"
		held := []store.Ref{
			cs[0].Ref(),
			cs[1].Ref(),
			{TaskID: cs[2].TaskID, Owner: cs[2].Owner, Fence: cs[2].Fence + 7},
			cs[3].Ref(),
			wrongOwner,
			{TaskID: "unknown", Fence: 1},
		}
		lost, err := st.Renew(ctx, "w1", held, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(lost)
		want := []string{cs[1].TaskID, cs[2].TaskID, cs[3].TaskID, cs[4].TaskID, "unknown"}
		slices.Sort(want)
		if !slices.Equal(lost, want) {
			t.Fatalf("lost = %v, want %v", lost, want)
		}
		score, err := rdb.ZScore(ctx, "faas:leases", cs[0].TaskID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if exp := time.UnixMilli(int64(score)); exp.Before(time.Now().Add(50 * time.Minute)) {
			t.Fatalf("renewed lease expires at %v, want about an hour from now", exp)
		}
		// Another worker cannot renew it, and the lease stays put.
		if lost, _ := st.Renew(ctx, "w2", []store.Ref{cs[0].Ref()}, time.Second); !slices.Equal(lost, []string{cs[0].TaskID}) {
			t.Fatalf("Renew by another worker: lost = %v", lost)
		}
		if again, _ := rdb.ZScore(ctx, "faas:leases", cs[0].TaskID).Result(); again != score {
			t.Fatalf("lease moved from %v to %v by a non-holder", score, again)
		}
		// When the old expiry has passed, the renewed lease stays and the
		// ones asked for with a wrong fence or owner (not renewed) are reaped.
		rq, fl, err := st.ReapExpired(ctx, time.Now().Add(time.Minute))
		slices.Sort(rq)
		if err != nil || !slices.Equal(rq, []string{cs[2].TaskID, cs[4].TaskID}) || len(fl) != 0 {
			t.Fatalf("ReapExpired after renew = %v, %v, %v; want [%s %s] requeued", rq, fl, err, cs[2].TaskID, cs[4].TaskID)
		}
		if lost, err := st.Renew(ctx, "w1", nil, time.Second); lost != nil || err != nil {
			t.Fatalf("Renew(nothing) = %v, %v", lost, err)
		}
	})
}

func TestReapRequeuesThenFails(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 3}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 3) // task-00000 is the one that keeps getting lost
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()

		var fences []int64
		for attempt := 1; attempt <= 3; attempt++ {
			cs, err := st.Claim(ctx, fmt.Sprintf("w%d", attempt), 1, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// A requeued task is next, ahead of older queued ones.
			if len(cs) != 1 || cs[0].TaskID != "task-00000" || cs[0].Attempt != attempt {
				t.Fatalf("attempt %d: Claim = %+v", attempt, cs)
			}
			fences = append(fences, cs[0].Fence)
			if rq, fl, err := st.ReapExpired(ctx, time.Now().Add(-time.Minute)); err != nil || len(rq)+len(fl) != 0 {
				t.Fatalf("ReapExpired before expiry = %v, %v, %v", rq, fl, err)
			}
			mustStatus(t, st, "task-00000", faastype.Running)
			if attempt < 3 {
				rq, fl, err := st.ReapExpired(ctx, time.Now().Add(time.Hour))
				if err != nil || !slices.Equal(rq, []string{"task-00000"}) || len(fl) != 0 {
					t.Fatalf("attempt %d: ReapExpired = %v, %v, %v", attempt, rq, fl, err)
				}
				// Statuses never move backwards: still RUNNING while requeued.
				mustStatus(t, st, "task-00000", faastype.Running)
				// The lost worker's late result is rejected.
				if ok, err := st.Complete(ctx, cs[0].Ref(), completed("AAAA")); ok || err != nil {
					t.Fatalf("late Complete = %v, %v", ok, err)
				}
			}
		}
		ch, stop := w.Wait("task-00000")
		defer stop()
		rq, fl, err := st.ReapExpired(ctx, time.Now().Add(time.Hour))
		if err != nil || len(rq) != 0 || !slices.Equal(fl, []string{"task-00000"}) {
			t.Fatalf("final ReapExpired = %v, %v, %v", rq, fl, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("waiter not woken by the WORKER_LOST failure")
		}
		if len(fences) != 3 || fences[0] >= fences[1] || fences[1] >= fences[2] {
			t.Fatalf("fences = %v, want growing", fences)
		}
		task, err := st.GetTask(ctx, "task-00000")
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != faastype.Failed || task.Error == nil || task.Error.Kind != faastype.KindWorkerLost ||
			task.Attempts != 3 || task.FinishedAt.IsZero() {
			t.Fatalf("task after final reap = %+v", task)
		}
		if n, _ := st.LeaseCount(ctx); n != 0 {
			t.Fatalf("LeaseCount = %d, want 0", n)
		}
		got := pyfixture.LoadExceptions(t, []string{task.Result})[0]
		if got.Type != "RuntimeError" || got.Module != "builtins" || got.Str != task.Error.Message || !got.Raised {
			t.Fatalf("WORKER_LOST result loads as %+v", got)
		}
		if !strings.Contains(got.Str, "3 times") {
			t.Fatalf("message %q does not say how often", got.Str)
		}
		// The other tasks are untouched and still in FIFO order.
		cs, _ := st.Claim(ctx, "w", 5, time.Minute)
		if got := claimIDs(cs); !slices.Equal(got, []string{"task-00001", "task-00002"}) {
			t.Fatalf("remaining claims = %v", got)
		}
	})
}

func TestReapManyLeases(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		const n = 1234 // more than one script batch
		enqueueN(t, st, n)
		cs, err := st.Claim(ctx, "w", n, time.Second)
		if err != nil || len(cs) != n {
			t.Fatalf("Claim = %d claims, %v", len(cs), err)
		}
		// Leases of tasks that became final by other means are dropped
		// silently; complete a few.
		for _, c := range cs[:10] {
			if ok, _ := st.Complete(ctx, c.Ref(), completed("AAAA")); !ok {
				t.Fatal("Complete failed")
			}
		}
		rq, fl, err := st.ReapExpired(ctx, time.Now().Add(time.Hour))
		if err != nil || len(rq) != n-10 || len(fl) != 0 {
			t.Fatalf("ReapExpired = %d requeued, %d failed, %v", len(rq), len(fl), err)
		}
		if d, _ := st.QueueDepth(ctx); d != n-10 {
			t.Fatalf("QueueDepth = %d, want %d", d, n-10)
		}
		if l, _ := st.LeaseCount(ctx); l != 0 {
			t.Fatalf("LeaseCount = %d", l)
		}
	})
}

func TestRelease(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 1}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueN(t, st, 2)
		cs, _ := st.Claim(ctx, "w1", 1, time.Minute)
		c := cs[0]
		if err := st.Release(ctx, c.Ref()); err != nil {
			t.Fatal(err)
		}
		task, _ := st.GetTask(ctx, c.TaskID)
		if task.Status != faastype.Running || task.Attempts != 0 {
			t.Fatalf("task after Release = %+v", task)
		}
		if n, _ := st.LeaseCount(ctx); n != 0 {
			t.Fatalf("LeaseCount after Release = %d", n)
		}
		// Releasing again, or by a stale fence, does nothing.
		if err := st.Release(ctx, c.Ref()); err != nil {
			t.Fatal(err)
		}
		if d, _ := st.QueueDepth(ctx); d != 2 {
			t.Fatalf("QueueDepth = %d, want 2 (no duplicate push)", d)
		}
		// The released task is next; the give-back did not count as an
		// attempt (MaxAttempts is 1), and its fence is new.
		cs, _ = st.Claim(ctx, "w2", 1, time.Second)
		if len(cs) != 1 || cs[0].TaskID != c.TaskID || cs[0].Attempt != 1 || cs[0].Fence <= c.Fence {
			t.Fatalf("Claim after Release = %+v", cs)
		}
		if ok, _ := st.Complete(ctx, c.Ref(), completed("AAAA")); ok {
			t.Fatal("Complete under the released fence was accepted")
		}
		// With MaxAttempts 1, losing this claim fails the task.
		if _, fl, _ := st.ReapExpired(ctx, time.Now().Add(time.Hour)); !slices.Equal(fl, []string{c.TaskID}) {
			t.Fatalf("failed = %v", fl)
		}
	})
}

func TestCancel(t *testing.T) {
	cases := []struct {
		name      string
		prepare   func(t *testing.T, st *store.Store, id string) // brings task id into the state to cancel
		want      store.Cancellation
		message   string // in the error and the exception; "" if not cancelled
		published bool   // on the cancel channel
	}{
		{name: "queued", prepare: func(t *testing.T, st *store.Store, id string) {},
			want: store.Cancellation{Cancelled: true, Was: faastype.Queued}, message: "cancelled before it started"},
		{name: "running", prepare: func(t *testing.T, st *store.Store, id string) { claimOne(t, st, id) },
			want: store.Cancellation{Cancelled: true, Was: faastype.Running}, message: "cancelled while it was running", published: true},
		{name: "requeued", prepare: func(t *testing.T, st *store.Store, id string) {
			c := claimOne(t, st, id)
			if _, _, err := st.Requeue(testCtx(t), []store.Ref{c.Ref()}); err != nil {
				t.Fatal(err)
			}
		}, want: store.Cancellation{Cancelled: true, Was: faastype.Running}, message: "cancelled while it was running", published: true},
		{name: "completed", prepare: func(t *testing.T, st *store.Store, id string) {
			c := claimOne(t, st, id)
			if ok, err := st.Complete(testCtx(t), c.Ref(), completed("AAAA")); !ok || err != nil {
				t.Fatalf("Complete = %v, %v", ok, err)
			}
		}, want: store.Cancellation{Cancelled: false, Was: faastype.Completed}},
	}
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()
		cancels, stop := st.SubscribeCancels(ctx)
		defer stop()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := "task-" + c.name
				if err := st.Enqueue(ctx, newTask(id)); err != nil {
					t.Fatal(err)
				}
				c.prepare(t, st, id)
				before, _ := st.GetTask(ctx, id)
				woken, stopWait := w.Wait(id)
				defer stopWait()

				got, err := st.Cancel(ctx, id)
				if err != nil || got != c.want {
					t.Fatalf("Cancel = %+v, %v; want %+v", got, err, c.want)
				}
				task, _ := st.GetTask(ctx, id)
				if !c.want.Cancelled {
					if !reflect.DeepEqual(task, before) {
						t.Fatalf("a final task changed:\n%+v\n%+v", before, task)
					}
					return
				}
				select {
				case <-woken:
				case <-ctx.Done():
					t.Fatal("waiter not woken by Cancel")
				}
				if task.Status != faastype.Failed || task.Error == nil || task.Error.Kind != faastype.KindCancelled ||
					!strings.Contains(task.Error.Message, c.message) || task.FinishedAt.IsZero() {
					t.Fatalf("cancelled task = %+v", task)
				}
				exc := pyfixture.LoadExceptions(t, []string{task.Result})[0]
				if exc.Type != "RuntimeError" || !strings.Contains(exc.Str, c.message) || !exc.Raised {
					t.Fatalf("CANCELLED result loads as %+v", exc)
				}
				if n, _ := rdb.ZScore(ctx, "faas:leases", id).Result(); n != 0 {
					t.Fatalf("the lease of the cancelled task is still there")
				}
				if q, _ := rdb.LRange(ctx, "faas:queue", 0, -1).Result(); slices.Contains(q, id) {
					t.Fatalf("the cancelled task is still in the queue %v", q)
				}
				if c.published {
					select {
					case got := <-cancels:
						if got != id {
							t.Fatalf("cancel channel carried %q, want %q", got, id)
						}
					case <-ctx.Done():
						t.Fatal("nothing published on the cancel channel")
					}
				}
				// A second cancel finds it final.
				if again, err := st.Cancel(ctx, id); err != nil || again != (store.Cancellation{Was: faastype.Failed}) {
					t.Fatalf("second Cancel = %+v, %v", again, err)
				}
				if c.want.Was == faastype.Running && before.Fence > 0 {
					// The holder's late result and renewal are rejected.
					if ok, err := st.Complete(ctx, store.Ref{TaskID: id, Owner: before.Owner, Fence: before.Fence}, completed("AAAA")); ok || err != nil {
						t.Fatalf("Complete after cancel = %v, %v", ok, err)
					}
					if lost, err := st.Renew(ctx, "w", []store.Ref{{TaskID: id, Owner: before.Owner, Fence: before.Fence}}, time.Minute); err != nil || !slices.Equal(lost, []string{id}) {
						t.Fatalf("Renew after cancel = %v, %v", lost, err)
					}
				}
			})
		}
		if _, err := st.Cancel(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Cancel(unknown): err = %v", err)
		}
		if d, _ := st.QueueDepth(ctx); d != 0 {
			t.Fatalf("QueueDepth after the cancels = %d", d)
		}
		// Claim drops a task whose hash vanished.
		if err := st.Enqueue(ctx, newTask("vanishes")); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Del(ctx, "vanishes").Err(); err != nil {
			t.Fatal(err)
		}
		if cs, err := st.Claim(ctx, "w", 5, time.Minute); err != nil || len(cs) != 0 {
			t.Fatalf("Claim = %+v, %v; want nothing", cs, err)
		}
		if d, _ := st.QueueDepth(ctx); d != 0 {
			t.Fatalf("QueueDepth = %d", d)
		}
	})
}

// claimOne claims the next task, which must be id.
func claimOne(t *testing.T, st *store.Store, id string) store.Claim {
	t.Helper()
	cs, err := st.Claim(testCtx(t), "w", 1, time.Minute)
	if err != nil || len(cs) != 1 || cs[0].TaskID != id {
		t.Fatalf("Claim = %+v, %v; want %s", cs, err, id)
	}
	return cs[0]
}

var statusRank = map[faastype.Status]int{faastype.Queued: 0, faastype.Running: 1, faastype.Completed: 2, faastype.Failed: 2}

// TestStatusesNeverMoveBackwards drives a few tasks through a long
// pseudo-random sequence of every operation (including stale ones) and
// checks after each step that no status moved backwards, that a final status
// never changes, and that every FAILED task has a result.
func TestStatusesNeverMoveBackwards(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 3}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids := enqueueN(t, st, 6)
		// Tasks with retry policies (retried at once, or an hour later) and
		// delayed ones, which only promote makes runnable.
		for i, spec := range []struct {
			retry *faastype.RetryPolicy
			runAt time.Time
		}{
			{&faastype.RetryPolicy{Max: 2, Backoff: "fixed"}, time.Time{}},
			{&faastype.RetryPolicy{Max: 3, Backoff: "fixed", Base: time.Hour, MaxDelay: time.Hour}, time.Time{}},
			{&faastype.RetryPolicy{Max: 1, Backoff: "fixed"}, time.Now().Add(time.Hour)},
			{nil, time.Now().Add(time.Hour)},
		} {
			tk := newTask(fmt.Sprintf("sched-%d", i))
			tk.Retry, tk.RunAt = spec.retry, spec.runAt
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
		}
		last := make(map[string]faastype.Status)
		var claims []store.Claim
		seed := uint64(42)
		next := func(n int) int { // xorshift, deterministic
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			return int(seed % uint64(n))
		}
		for step := range 600 {
			var op string
			switch next(10) {
			case 8:
				op = "promote"
				if _, _, err := st.PromoteDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
					t.Fatal(err)
				}
			case 9:
				op = "fail or retry"
				if len(claims) > 0 {
					c := claims[next(len(claims))]
					o := store.RetryOutcome(c, store.Outcome{Status: faastype.Failed,
						Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "ValueError: again"}}, 0.5)
					if _, err := st.Complete(ctx, c.Ref(), o); err != nil {
						t.Fatal(err)
					}
				}
			case 0, 1:
				op = "claim"
				cs, err := st.Claim(ctx, "w", 1+next(2), time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				claims = append(claims, cs...)
			case 2:
				op = "complete"
				if len(claims) > 0 {
					c := claims[next(len(claims))]
					o := completed("AAAA")
					if next(2) == 0 {
						o = store.Outcome{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom"}}
					}
					if _, err := st.Complete(ctx, c.Ref(), o); err != nil {
						t.Fatal(err)
					}
				}
			case 3:
				op = "release"
				if len(claims) > 0 {
					c := claims[next(len(claims))]
					if err := st.Release(ctx, c.Ref()); err != nil {
						t.Fatal(err)
					}
				}
			case 4:
				op = "reap"
				if _, _, err := st.ReapExpired(ctx, time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			case 5:
				op = "cancel"
				if _, err := st.Cancel(ctx, ids[next(len(ids))]); err != nil {
					t.Fatal(err)
				}
			case 7:
				op = "requeue"
				if len(claims) > 0 {
					c := claims[next(len(claims))]
					if _, _, err := st.Requeue(ctx, []store.Ref{c.Ref()}); err != nil {
						t.Fatal(err)
					}
				}
			case 6:
				op = "renew"
				if len(claims) > 0 {
					c := claims[next(len(claims))]
					if _, err := st.Renew(ctx, "w", []store.Ref{c.Ref()}, time.Minute); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, id := range ids {
				task, err := st.GetTask(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				prev, seen := last[id]
				if seen && (statusRank[task.Status] < statusRank[prev] || (prev.Final() && task.Status != prev)) {
					t.Fatalf("step %d (%s): %s went from %s to %s", step, op, id, prev, task.Status)
				}
				if task.Status == faastype.Failed && (task.Result == "" || task.Error == nil) {
					t.Fatalf("step %d (%s): FAILED task without result or error: %+v", step, op, task)
				}
				last[id] = task.Status
			}
			// The books agree: one running count per lease, one scheduled
			// count per scheduled entry.
			leases, _ := rdb.ZCard(ctx, "faas:leases").Result()
			scheduled, _ := rdb.ZCard(ctx, "faas:scheduled").Result()
			var running, counted int64
			for _, v := range rdb.HVals(ctx, "faas:running").Val() {
				n, _ := strconv.ParseInt(v, 10, 64)
				running += n
			}
			for _, v := range rdb.HVals(ctx, "faas:scheduled_n").Val() {
				n, _ := strconv.ParseInt(v, 10, 64)
				counted += n
			}
			if running != leases || counted != scheduled {
				t.Fatalf("step %d (%s): %d leases but running counts %d; %d scheduled but counts %d", step, op, leases, running, scheduled, counted)
			}
		}
		final := 0
		for _, s := range last {
			if s.Final() {
				final++
			}
		}
		if final == 0 {
			t.Fatal("the sequence never finished a task; it tests nothing")
		}
		if stats, err := st.Stats(ctx); err != nil || stats.Retried == 0 {
			t.Fatalf("the sequence never retried a task (%v); it tests too little", err)
		}
	})
}
