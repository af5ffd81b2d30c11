package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Large payloads are staged and read outside the Lua scripts; what a
// caller sees must not change with their size.
func TestLargePayloads(t *testing.T) {
	big := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	cases := []struct {
		name       string
		fn         string
		params     []string
		staged     bool // at or past the threshold: the payloads take the staged path
		queueLimit int
	}{
		{"small", fnPayload, []string{paramPayload}, false, 0},
		{"one large argument", fnPayload, []string{big('A', 1<<20)}, true, 0},
		{"large function", big('F', 40<<10), []string{paramPayload}, true, 0},
		{"batch of large arguments", fnPayload, []string{big('a', 20<<10), big('b', 20<<10), big('c', 20<<10)}, true, 0},
		{"batch of many small ones", fnPayload, func() []string {
			ps := make([]string, 200)
			for i := range ps {
				ps[i] = big(byte('a'+i%26), 300)
			}
			return ps
		}(), false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
				ctx := testCtx(t)
				tmpl := newTask("x")
				tmpl.FnPayload = tc.fn
				ids := make([]string, len(tc.params))
				for i := range ids {
					ids[i] = fmt.Sprintf("t%03d", i)
				}
				if err := st.EnqueueBatch(ctx, tmpl, ids, tc.params); err != nil {
					t.Fatal(err)
				}
				for i, id := range ids {
					got, err := st.GetTask(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if got.FnPayload != tc.fn || got.ParamPayload != tc.params[i] || got.Status != faastype.Queued {
						t.Fatalf("task %s: status %s, payloads of %d and %d bytes, want %d and %d", id, got.Status,
							len(got.FnPayload), len(got.ParamPayload), len(tc.fn), len(tc.params[i]))
					}
					if ttl := rdb.PTTL(ctx, id).Val(); ttl >= 0 {
						t.Fatalf("task %s expires in %v; a queued task must not", id, ttl)
					}
				}
				if keys := rdb.Keys(ctx, store.DefaultPrefix+"staged:*").Val(); len(keys) != 0 {
					t.Fatalf("staged payloads left behind: %v", keys)
				}
				claims, err := st.Claim(ctx, "w", len(ids), 10e9)
				if err != nil {
					t.Fatal(err)
				}
				if len(claims) != len(ids) {
					t.Fatalf("claimed %d of %d tasks", len(claims), len(ids))
				}
				for i, c := range claims {
					if c.TaskID != ids[i] || c.FnPayload != tc.fn || c.ParamPayload != tc.params[i] || c.FunctionID != "fn-x" || c.Fence < 1 {
						t.Fatalf("claim %d: %s, function %s, fence %d, payloads of %d and %d bytes", i, c.TaskID, c.FunctionID, c.Fence,
							len(c.FnPayload), len(c.ParamPayload))
					}
				}
			})
		})
	}
}

// A refused enqueue of staged payloads leaves nothing behind and changes
// nothing that existed.
func TestLargePayloadsRefused(t *testing.T) {
	eachBackend(t, store.Options{MaxQueued: 3}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		large := strings.Repeat("L", 64<<10)
		first := newTask("taken")
		if err := st.Enqueue(ctx, first); err != nil {
			t.Fatal(err)
		}
		tmpl := newTask("x")
		if err := st.EnqueueBatch(ctx, tmpl, []string{"new", "taken"}, []string{large, large}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		if got, _ := st.GetTask(ctx, "taken"); got.ParamPayload != paramPayload {
			t.Fatalf("the existing task's arguments changed to %d bytes", len(got.ParamPayload))
		}
		if n := rdb.Exists(ctx, "new").Val(); n != 0 {
			t.Fatal("a task of a refused batch exists")
		}
		if err := st.EnqueueBatch(ctx, tmpl, []string{"a", "b", "c"}, []string{large, large, large}); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("err = %v, want ErrQueueFull", err)
		}
		if keys := rdb.Keys(ctx, store.DefaultPrefix+"staged:*").Val(); len(keys) != 0 {
			t.Fatalf("staged payloads left behind: %v", keys)
		}
		if n, _ := st.QueueDepth(ctx); n != 1 {
			t.Fatalf("queue depth %d, want 1", n)
		}
	})
}

// A task whose hash was deleted between the claim script and the read of
// its large payloads is not handed out.
func TestLargePayloadGoneAfterClaim(t *testing.T) {
	// The claim script sees large payloads and leaves them out; the
	// arguments are missing when they are read.
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		task := newTask("t1")
		task.ParamPayload = strings.Repeat("P", 64<<10)
		if err := st.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
		rdb.HDel(ctx, "t1", "param_payload")
		rdb.HSet(ctx, "t1", "fn_payload", strings.Repeat("F", 64<<10)) // still large: read apart
		claims, err := st.Claim(ctx, "w", 1, 10e9)
		if err != nil {
			t.Fatal(err)
		}
		if len(claims) != 0 {
			t.Fatalf("handed out a task without arguments: %+v", claims[0].TaskID)
		}
	})
}
