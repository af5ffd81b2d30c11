package store_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// A function registered as source text keeps its source; a task that asks
// for JSON carries the wish to the claimer and its JSON result back.
func TestPortableFields(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		f := store.Function{ID: "6a0e9c1e-0000-4000-8000-000000000001", Name: "area", Payload: "gAQu",
			Source: "def area(r): return r * r", Entrypoint: "area"}
		if err := st.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetFunction(ctx, f.ID)
		if err != nil || got.Source != f.Source || got.Entrypoint != "area" {
			t.Fatalf("%+v %v", got, err)
		}
		// A dill function has no source fields at all in its hash.
		d := store.Function{ID: "6a0e9c1e-0000-4000-8000-000000000002", Name: "d", Payload: "gAQu"}
		if err := st.PutFunction(ctx, d); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.HExists(ctx, d.ID, "source").Result(); n {
			t.Error("dill function stored a source field")
		}

		for _, want := range []bool{true, false} {
			id := "7b0e9c1e-0000-4000-8000-00000000000" + map[bool]string{true: "1", false: "2"}[want]
			if err := st.Enqueue(ctx, store.Task{ID: id, FunctionID: f.ID, FnPayload: "gAQu", ParamPayload: "gAQu", WantJSON: want}); err != nil {
				t.Fatal(err)
			}
			cl, err := st.Claim(ctx, "w", 1, time.Minute)
			if err != nil || len(cl) != 1 || cl[0].WantJSON != want {
				t.Fatalf("claim %+v %v, want WantJSON=%v", cl, err, want)
			}
			o := store.Outcome{Status: faastype.Completed, Result: "gARLKi4="}
			if want {
				o.ResultJSON = "42"
			}
			if ok, err := st.Complete(ctx, cl[0].Ref(), o); !ok || err != nil {
				t.Fatal(ok, err)
			}
			task, err := st.GetTask(ctx, id)
			if err != nil || task.WantJSON != want || task.ResultJSON != o.ResultJSON {
				t.Fatalf("%+v %v", task, err)
			}
		}
	})
}
