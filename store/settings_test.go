package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// A function's settings are stored with it and read back; its tasks carry
// them (the environment with the secrets) to the claim, and a final task
// keeps none of them.
func TestFunctionSettingsTravelToTheClaim(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		set := store.Settings{Timeout: 1500 * time.Millisecond, MemoryBytes: 96 << 20,
			Env: map[string]string{"MODE": "prod", "EMPTY": ""}, Secrets: map[string]string{"TOKEN": "s3cr=t"}}
		f := store.Function{ID: uuid.NewString(), Name: "f", Payload: fnPayload, Settings: set}
		if err := st.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetFunction(ctx, f.ID)
		if err != nil || !reflect.DeepEqual(got.Settings, set) {
			t.Fatalf("GetFunction settings = %+v, %v; want %+v", got.Settings, err, set)
		}
		wantEnv := []string{"EMPTY=", "MODE=prod", "TOKEN=s3cr=t"}
		if env := set.TaskEnv(); !reflect.DeepEqual(env, wantEnv) {
			t.Fatalf("TaskEnv = %q", env)
		}
		tk := newTask(uuid.NewString())
		tk.Timeout, tk.MemoryBytes, tk.Env = set.Timeout, set.MemoryBytes, set.TaskEnv()
		if err := st.Enqueue(ctx, tk); err != nil {
			t.Fatal(err)
		}
		plain := newTask(uuid.NewString())
		if err := st.Enqueue(ctx, plain); err != nil {
			t.Fatal(err)
		}
		cs, err := st.Claim(ctx, "w", 2, time.Minute)
		if err != nil || len(cs) != 2 {
			t.Fatalf("Claim: %+v %v", cs, err)
		}
		if c := cs[0]; c.Timeout != set.Timeout || c.MemoryBytes != set.MemoryBytes || !reflect.DeepEqual(c.Env, wantEnv) {
			t.Fatalf("claim carries %v %d %q", c.Timeout, c.MemoryBytes, c.Env)
		}
		if c := cs[1]; c.Timeout != 0 || c.MemoryBytes != 0 || c.Env != nil {
			t.Fatalf("a task without settings carries %v %d %q", c.Timeout, c.MemoryBytes, c.Env)
		}
		if ok, err := st.Complete(ctx, cs[0].Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}); !ok || err != nil {
			t.Fatalf("Complete: %v %v", ok, err)
		}
		for _, field := range []string{"env", "timeout_ms", "memory_bytes"} {
			if ok, _ := rdb.HExists(ctx, tk.ID, field).Result(); ok {
				t.Errorf("the final task keeps %s", field)
			}
		}
	})
}
