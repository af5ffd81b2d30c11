package store_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// TestStatsCountEveryTransition drives tasks through every way to a final
// status and checks the counters, the histograms and the result TTL that
// the scripts keep.
func TestStatsCountEveryTransition(t *testing.T) {
	const ttl = time.Hour
	eachBackend(t, store.Options{MaxAttempts: 1, ResultTTL: ttl}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		// Submitted 100 s ago: every latency lands in the (60 s, 120 s] bucket.
		created := time.Now().Add(-100 * time.Second)
		tmpl := newTask("")
		tmpl.CreatedAt = created
		if err := st.EnqueueBatch(ctx, tmpl, []string{"a", "b", "c"}, []string{paramPayload, paramPayload, paramPayload}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"d", "e", "f"} {
			tk := newTask(id)
			tk.CreatedAt = created
			if err := st.Enqueue(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.PutFunction(ctx, store.Function{ID: "fn", Name: "f", Payload: fnPayload}); err != nil {
			t.Fatal(err)
		}
		check := func(step string, want store.Stats) {
			t.Helper()
			got, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.Submitted != want.Submitted || got.Queued != want.Queued || got.Running != want.Running ||
				got.QueueLength != want.QueueLength || got.Leases != want.Leases {
				t.Fatalf("%s: stats = %+v, want %+v", step, got, want)
			}
			if want.Finished != nil && fmt.Sprint(got.Finished) != fmt.Sprint(want.Finished) {
				t.Fatalf("%s: finished = %v, want %v", step, got.Finished, want.Finished)
			}
			if want.Failed != nil && fmt.Sprint(got.Failed) != fmt.Sprint(want.Failed) {
				t.Fatalf("%s: failed = %v, want %v", step, got.Failed, want.Failed)
			}
		}
		check("enqueued", store.Stats{Submitted: 6, Queued: 6, QueueLength: 6})

		cs, err := st.Claim(ctx, "w", 4, time.Minute)
		if err != nil || !slices.Equal(claimIDs(cs), []string{"a", "b", "c", "d"}) {
			t.Fatalf("Claim = %v, %v", claimIDs(cs), err)
		}
		check("claimed", store.Stats{Submitted: 6, Queued: 2, Running: 4, QueueLength: 2, Leases: 4})

		if ok, err := st.Complete(ctx, cs[0].Ref(), completed("AAAA")); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		boom := store.Outcome{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom"}}
		if ok, err := st.Complete(ctx, cs[1].Ref(), boom); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		if _, failed, err := st.Requeue(ctx, []store.Ref{cs[2].Ref()}); err != nil || !slices.Equal(failed, []string{"c"}) {
			t.Fatalf("Requeue: failed %v, %v", failed, err)
		}
		if c, err := st.Cancel(ctx, "d"); err != nil || c.Was != faastype.Running {
			t.Fatalf("Cancel(running) = %+v, %v", c, err)
		}
		if c, err := st.Cancel(ctx, "e"); err != nil || c.Was != faastype.Queued {
			t.Fatalf("Cancel(queued) = %+v, %v", c, err)
		}
		if _, err := st.Claim(ctx, "w", 1, time.Millisecond); err != nil { // drops e, takes f
			t.Fatal(err)
		}
		if _, failed, err := st.ReapExpired(ctx, time.Now().Add(time.Second)); err != nil || !slices.Equal(failed, []string{"f"}) {
			t.Fatalf("ReapExpired: failed %v, %v", failed, err)
		}
		// Stale operations count nothing.
		if ok, _ := st.Complete(ctx, cs[0].Ref(), completed("AAAA")); ok {
			t.Fatal("repeated Complete recorded")
		}
		if c, _ := st.Cancel(ctx, "a"); c.Cancelled {
			t.Fatal("cancelled a final task")
		}
		check("final", store.Stats{Submitted: 6, QueueLength: 0,
			Finished: map[faastype.Status]int64{"COMPLETED": 1, "FAILED": 5},
			Failed:   map[faastype.ErrorKind]int64{"CANCELLED": 2, "USER_EXCEPTION": 1, "WORKER_LOST": 2}})

		got, err := st.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name  string
			h     store.Histogram
			count uint64
		}{
			{"latency COMPLETED", got.Latency["COMPLETED"], 1},
			{"latency FAILED", got.Latency["FAILED"], 5},
			{"execution COMPLETED", got.Execution["COMPLETED"], 1},
			{"execution FAILED", got.Execution["FAILED"], 4}, // e never ran
		} {
			cum := c.h.Cumulative()
			if c.h.Count != c.count || cum[3600] != c.count || len(cum) != len(store.HistogramBuckets) {
				t.Errorf("%s: count %d, cumulative %v; want %d", c.name, c.h.Count, cum, c.count)
			}
			if c.name[:7] == "latency" && (cum[60] != 0 || cum[120] != c.count || c.h.Sum < 100*float64(c.count)) {
				t.Errorf("%s: cumulative %v sum %v; want every task in (60, 120]", c.name, cum, c.h.Sum)
			}
		}

		// Final tasks expire after the TTL; the others and functions never.
		for id, want := range map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": true, "fn": false} {
			pttl, err := rdb.PTTL(ctx, id).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want && (pttl <= 0 || pttl > ttl) {
				t.Errorf("TTL of final task %s = %v, want (0, %v]", id, pttl, ttl)
			}
			if !want && pttl != -1*time.Nanosecond && pttl != -1 {
				t.Errorf("TTL of %s = %v, want none", id, pttl)
			}
		}
	})
}

// With a zero TTL, tasks are kept; with a tiny one they are gone soon
// after they are final, and the queue and indexes cope with it.
func TestResultTTL(t *testing.T) {
	cases := []struct {
		name string
		ttl  time.Duration
		gone bool
	}{
		{"keep", 0, false},
		{"expire", time.Millisecond, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Real Redis only: miniredis expires keys when told to
			// (`faas up` tells it every second).
			rdb := redistest.Start(t)
			st := store.New(rdb, store.Options{ResultTTL: c.ttl})
			ctx := testCtx(t)
			ids := enqueueN(t, st, 2)
			cs, err := st.Claim(ctx, "w", 1, time.Minute)
			if err != nil || len(cs) != 1 {
				t.Fatalf("Claim = %v, %v", cs, err)
			}
			if ok, err := st.Complete(ctx, cs[0].Ref(), completed("AAAA")); !ok || err != nil {
				t.Fatalf("Complete = %v, %v", ok, err)
			}
			if !c.gone {
				if pttl, _ := rdb.PTTL(ctx, ids[0]).Result(); pttl >= 0 {
					t.Fatalf("TTL = %v, want none", pttl)
				}
				return
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := st.Status(ctx, ids[0])
				if errors.Is(err, store.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("task still there: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			recent, err := st.RecentTasks(ctx, 10)
			if err != nil || len(recent) != 1 || recent[0].ID != ids[1] {
				t.Fatalf("RecentTasks = %+v, %v", recent, err)
			}
			if _, err := st.Cancel(ctx, ids[0]); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Cancel(expired) = %v", err)
			}
		})
	}
}

func TestEnqueueBatch(t *testing.T) {
	cases := []struct {
		name    string
		ids     []string
		params  []string
		wantErr error  // errors.Is; nil with errText "" means success
		errText string // substring of the error
	}{
		{name: "three", ids: []string{"b1", "b2", "b3"}, params: []string{"cDE=", "cDI=", "cDM="}},
		{name: "one", ids: []string{"b4"}, params: []string{"cDQ="}},
		{name: "id taken", ids: []string{"b5", "taken", "b6"}, params: []string{"x", "y", "z"}, wantErr: store.ErrExists},
		{name: "id twice", ids: []string{"b7", "b7"}, params: []string{"x", "y"}, errText: "given twice"},
		{name: "empty id", ids: []string{""}, params: []string{"x"}, errText: "empty task id"},
		{name: "lengths differ", ids: []string{"b8"}, params: nil, errText: "1 task ids for 0 argument payloads"},
		{name: "nothing", ids: nil, params: nil, errText: "0 task ids"},
	}
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		if err := st.Enqueue(ctx, newTask("taken")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Claim(ctx, "w", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		tmpl := newTask("")
		tmpl.WantJSON = true
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				published, stop := st.SubscribeTasks(ctx)
				defer stop()
				before, _ := st.Stats(ctx)
				err := st.EnqueueBatch(ctx, tmpl, c.ids, c.params)
				after, _ := st.Stats(ctx)
				if c.wantErr != nil || c.errText != "" {
					if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) || !strings.Contains(err.Error(), c.errText) {
						t.Fatalf("EnqueueBatch = %v, want %v %q", err, c.wantErr, c.errText)
					}
					if fmt.Sprint(before) != fmt.Sprint(after) {
						t.Fatalf("a refused batch changed the stats: %+v -> %+v", before, after)
					}
					for _, id := range c.ids {
						if id == "taken" || id == "" {
							continue
						}
						if _, err := st.Status(ctx, id); !errors.Is(err, store.ErrNotFound) {
							t.Fatalf("task %s of a refused batch exists (%v)", id, err)
						}
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if after.Submitted-before.Submitted != int64(len(c.ids)) || after.QueueLength-before.QueueLength != int64(len(c.ids)) {
					t.Fatalf("stats %+v -> %+v", before, after)
				}
				for _, id := range c.ids {
					select {
					case got := <-published:
						if got != id {
							t.Fatalf("published %s, want %s (in order)", got, id)
						}
					case <-ctx.Done():
						t.Fatal("not published")
					}
				}
				cs, err := st.Claim(ctx, "w", len(c.ids), time.Minute)
				if err != nil || !slices.Equal(claimIDs(cs), c.ids) {
					t.Fatalf("claimed %v, %v; want %v in order", claimIDs(cs), err, c.ids)
				}
				for i, cl := range cs {
					if cl.ParamPayload != c.params[i] || cl.FnPayload != tmpl.FnPayload || cl.FunctionID != tmpl.FunctionID ||
						!cl.WantJSON || cl.Isolation != tmpl.Isolation {
						t.Fatalf("claim %d = %+v", i, cl)
					}
				}
			})
		}
	})
}

func TestRecentTasks(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		if err := st.PutFunction(ctx, store.Function{ID: "fn-1", Name: "one", Payload: fnPayload}); err != nil {
			t.Fatal(err)
		}
		n := store.RecentTasks + 5
		ids := make([]string, n)
		params := make([]string, n)
		for i := range ids {
			ids[i], params[i] = fmt.Sprintf("r%04d", i), paramPayload
		}
		tmpl := newTask("")
		tmpl.FunctionID = "fn-1"
		if err := st.EnqueueBatch(ctx, tmpl, ids[:n-1], params[:n-1]); err != nil {
			t.Fatal(err)
		}
		last := newTask(ids[n-1]) // a function that does not exist
		if err := st.Enqueue(ctx, last); err != nil {
			t.Fatal(err)
		}
		// One is cancelled, one disappears (as after its result TTL).
		if _, err := st.Cancel(ctx, ids[n-2]); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Del(ctx, ids[n-3]).Err(); err != nil {
			t.Fatal(err)
		}
		// Trimmed once it passes its length by a tenth, not at every push.
		if n, err := rdb.LLen(ctx, "faas:recent").Result(); err != nil || n < store.RecentTasks || n > store.RecentTasks*11/10 {
			t.Fatalf("recent list has %d ids, %v; want %d to %d", n, err, store.RecentTasks, store.RecentTasks*11/10)
		}

		cases := []struct {
			ask  int
			want []string
		}{
			{0, nil},
			{-1, nil},
			{1, []string{ids[n-1]}},
			{3, []string{ids[n-1], ids[n-2]}}, // ids[n-3] is gone
			{10_000, nil},                     // checked below
		}
		for _, c := range cases {
			got, err := st.RecentTasks(ctx, c.ask)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []string
			for _, g := range got {
				gotIDs = append(gotIDs, g.ID)
			}
			if c.ask == 10_000 {
				if len(got) != store.RecentTasks-1 || got[len(got)-1].ID != ids[5] {
					t.Fatalf("RecentTasks(%d): %d tasks, last %s", c.ask, len(got), got[len(got)-1].ID)
				}
				continue
			}
			if !slices.Equal(gotIDs, c.want) {
				t.Fatalf("RecentTasks(%d) = %v, want %v", c.ask, gotIDs, c.want)
			}
		}
		got, _ := st.RecentTasks(ctx, 2)
		if got[0].FunctionName != "" || got[0].Status != faastype.Queued || got[0].CreatedAt.IsZero() {
			t.Fatalf("newest = %+v", got[0])
		}
		if got[1].FunctionName != "one" || got[1].FunctionID != "fn-1" || got[1].Status != faastype.Failed ||
			got[1].ErrorKind != faastype.KindCancelled || got[1].FinishedAt.IsZero() {
			t.Fatalf("second = %+v", got[1])
		}
	})
}
