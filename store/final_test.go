package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// A finished task keeps what /result, /status and the dashboard read, and
// nothing else: its payloads, fence, fn_hash, isolation and bundle go, and
// on redis-server a no-op's hash is stored compactly (listpack), well under
// half a kilobyte. Every final transition rewrites it so.
func TestFinishedTasksAreSmall(t *testing.T) {
	// A real function payload is a few hundred bytes: enough to make the
	// queued task's hash a hash table.
	bigFn := fnPayload + strings.Repeat("A", 400)
	finals := []struct {
		name   string
		finish func(t *testing.T, st *store.Store, id string)
		status faastype.Status
	}{
		{"completed", func(t *testing.T, st *store.Store, id string) {
			cl := claimOne(t, st, id)
			ok, err := st.Complete(testCtx(t), cl.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg==",
				Timings: &faastype.Timings{Deserialize: 0.000281, Run: 0.000007, Serialize: 0.000006, Total: 0.001065}})
			if err != nil || !ok {
				t.Fatalf("Complete: %v %v", ok, err)
			}
		}, faastype.Completed},
		{"cancelled while queued", func(t *testing.T, st *store.Store, id string) {
			if _, err := st.Cancel(testCtx(t), id); err != nil {
				t.Fatal(err)
			}
		}, faastype.Failed},
		{"cancelled while running", func(t *testing.T, st *store.Store, id string) {
			claimOne(t, st, id)
			if _, err := st.Cancel(testCtx(t), id); err != nil {
				t.Fatal(err)
			}
		}, faastype.Failed},
		{"lost on its last attempt", func(t *testing.T, st *store.Store, id string) {
			claimOne(t, st, id)
			if _, failed, err := st.ReapExpired(testCtx(t), time.Now().Add(time.Hour)); err != nil || len(failed) != 1 {
				t.Fatalf("ReapExpired: %v %v", failed, err)
			}
		}, faastype.Failed},
	}
	for _, f := range finals {
		t.Run(f.name, func(t *testing.T) {
			eachBackend(t, store.Options{MaxAttempts: 1, ResultTTL: time.Hour}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
				ctx := testCtx(t)
				task := newTask(uuid.NewString())
				task.FnPayload, task.Owner, task.Bundle, task.WantJSON = bigFn, "acme", "b-hash", true
				if err := st.Enqueue(ctx, task); err != nil {
					t.Fatal(err)
				}
				f.finish(t, st, task.ID)
				fields, err := rdb.HGetAll(ctx, task.ID).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, gone := range []string{"fn_payload", "param_payload", "fence", "fn_hash", "isolation", "bundle"} {
					if _, ok := fields[gone]; ok {
						t.Errorf("a final task keeps %s", gone)
					}
				}
				for _, kept := range []string{"status", "result", "finished_at", "created_at", "function_id", "owner", "want_json", "attempts"} {
					if fields[kept] == "" {
						t.Errorf("a final task lost %s: %v", kept, fields)
					}
				}
				got, err := st.GetTask(ctx, task.ID)
				if err != nil || got.Status != f.status || got.Owner != "acme" || !got.WantJSON || got.Result == "" {
					t.Fatalf("GetTask: %+v %v", got, err)
				}
				if ttl := rdb.PTTL(ctx, task.ID).Val(); ttl <= 0 || ttl > time.Hour {
					t.Errorf("TTL %v, want the result TTL", ttl)
				}
				if !strings.HasPrefix(t.Name(), "TestFinishedTasksAreSmall/"+f.name+"/redis-server") {
					return // miniredis has no encodings
				}
				if enc := rdb.ObjectEncoding(ctx, task.ID).Val(); enc != "listpack" && f.status == faastype.Completed {
					t.Errorf("a finished no-op is stored as %q, want listpack", enc)
				}
				if n := rdb.MemoryUsage(ctx, task.ID).Val(); f.status == faastype.Completed && n > 512 {
					t.Errorf("a finished no-op takes %d bytes", n)
				}
			})
		})
	}
}

// A final task is counted in the same script that makes it final: any
// store's Stats sees it as soon as its result can be read. The gauges come
// from the queues and leases, not from counters; the histograms are folded
// into one field per (status, kind, latency bucket, execution bucket).
func TestCountsAreThereWithTheResult(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		other := store.New(rdb, store.Options{})
		ids := enqueueN(t, st, 4)
		first := claimOne(t, st, ids[0])
		if ok, err := st.Complete(ctx, first.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		claimOne(t, st, ids[1])
		if _, err := other.Cancel(ctx, ids[2]); err != nil { // a QUEUED one: never executed
			t.Fatal(err)
		}
		s, err := other.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Submitted != 4 || s.Finished[faastype.Completed] != 1 || s.Finished[faastype.Failed] != 1 ||
			s.Failed[faastype.KindCancelled] != 1 || s.Queued != 1 || s.Running != 1 {
			t.Fatalf("Stats: %+v", s)
		}
		for _, c := range []struct {
			name string
			h    store.Histogram
			want uint64
		}{
			{"latency COMPLETED", s.Latency[faastype.Completed], 1},
			{"execution COMPLETED", s.Execution[faastype.Completed], 1},
			{"latency FAILED", s.Latency[faastype.Failed], 1},
			{"execution FAILED", s.Execution[faastype.Failed], 0},
		} {
			var sum uint64
			for _, n := range c.h.Counts {
				sum += n
			}
			if c.h.Count != c.want || sum != c.want {
				t.Errorf("%s: count %d, buckets %v; want %d", c.name, c.h.Count, c.h.Counts, c.want)
			}
		}
		// A stats hash written before the folded fields reads the same.
		rdb.HSet(ctx, "faas:stats", "finished:COMPLETED", 2, "failed:TIMEOUT", 1, "latency:COMPLETED:3", 2,
			"latency:COMPLETED:count", 2, "latency:COMPLETED:sum_ms", 40)
		s, err = other.Stats(ctx)
		if err != nil || s.Finished[faastype.Completed] != 3 || s.Failed[faastype.KindTimeout] != 1 ||
			s.Latency[faastype.Completed].Count != 3 || s.Latency[faastype.Completed].Counts[2] < 2 {
			t.Fatalf("Stats with old fields: %+v %v", s, err)
		}
	})
}

func TestTimingsRoundTrip(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		cases := []struct {
			in, want faastype.Timings
		}{
			{faastype.Timings{Queue: 0.5, Boot: 0.001, Deserialize: 0.000281, Run: 3599.999999, Serialize: 0.000006, Total: 3600},
				faastype.Timings{Queue: 0.5, Boot: 0.001, Deserialize: 0.000281, Run: 3599.999999, Serialize: 0.000006, Total: 3600}},
			{faastype.Timings{Queue: -1, Run: 1e-7}, faastype.Timings{}},
		}
		for _, c := range cases {
			id := enqueueN(t, st, 1)[0]
			cl := claimOne(t, st, id)
			in := c.in
			if ok, err := st.Complete(ctx, cl.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg==", Timings: &in}); err != nil || !ok {
				t.Fatal(ok, err)
			}
			got, err := st.GetTask(ctx, id)
			if err != nil || got.Timings == nil || *got.Timings != c.want {
				t.Fatalf("timings %+v read back as %+v (%v)", c.in, got.Timings, err)
			}
			if raw := rdb.HGet(ctx, id, "timings").Val(); len(raw) > 64 {
				t.Errorf("timings field %q is over 64 bytes", raw)
			}
			rdb.Del(ctx, id)
		}
		// A task written by an older version holds JSON.
		id := enqueueN(t, st, 1)[0]
		rdb.HSet(ctx, id, "status", "COMPLETED", "result", "gAROLg==", "timings", `{"queue":0.25,"total":1.5}`)
		got, err := st.GetTask(ctx, id)
		if err != nil || got.Timings == nil || got.Timings.Queue != 0.25 || got.Timings.Total != 1.5 {
			t.Fatalf("JSON timings read as %+v (%v)", got.Timings, err)
		}
	})
}

// CompleteAndClaim records like Complete and claims like Claim, in one
// script: a stale outcome is rejected and the claim still made; an
// invalid outcome does nothing at all.
func TestCompleteAndClaim(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids := enqueueN(t, st, 4)
		first := claimOne(t, st, ids[0])
		done := store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}
		ok, next, err := st.CompleteAndClaim(ctx, first.Ref(), done, "w", 2, time.Minute)
		if err != nil || !ok || len(next) != 2 || next[0].TaskID != ids[1] || next[1].TaskID != ids[2] {
			t.Fatalf("CompleteAndClaim = %v %v %v", ok, claimIDs(next), err)
		}
		if next[0].FnPayload != fnPayload || next[0].ParamPayload != paramPayload || next[0].Attempt != 1 {
			t.Fatalf("claim %+v", next[0])
		}
		mustStatus(t, st, ids[0], faastype.Completed)
		mustStatus(t, st, ids[1], faastype.Running)
		// The same outcome again is stale; the claim goes on.
		ok, more, err := st.CompleteAndClaim(ctx, first.Ref(), done, "w", 5, time.Minute)
		if err != nil || ok || len(more) != 1 || more[0].TaskID != ids[3] {
			t.Fatalf("stale CompleteAndClaim = %v %v %v", ok, claimIDs(more), err)
		}
		if _, _, err := st.CompleteAndClaim(ctx, next[0].Ref(), store.Outcome{Status: faastype.Failed}, "w", 1, time.Minute); err == nil {
			t.Fatal("a FAILED outcome without an error was accepted")
		}
		mustStatus(t, st, ids[1], faastype.Running)
		s, err := st.Stats(ctx)
		if err != nil || s.Finished[faastype.Completed] != 1 || s.Running != 3 {
			t.Fatalf("Stats %+v %v", s, err)
		}
	})
}
