package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

func TestBundlesArePerTenantAndContentAddressed(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		hash := strings.Repeat("ab", 32)
		zip := []byte("PK\x05\x06 a zip")
		for i, want := range []bool{true, false} {
			wrote, err := st.PutBundle(ctx, "alice", hash, zip)
			if err != nil || wrote != want {
				t.Fatalf("put %d: wrote %v, %v; want %v", i, wrote, err, want)
			}
		}
		got, err := st.GetBundle(ctx, "alice", hash)
		if err != nil || !bytes.Equal(got, zip) {
			t.Fatalf("GetBundle = %q, %v", got, err)
		}
		for _, other := range []string{"bob", ""} {
			if _, err := st.GetBundle(ctx, other, hash); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("tenant %q read alice's bundle: %v", other, err)
			}
		}
		if _, err := st.PutBundle(ctx, "no spaces", hash, zip); err == nil {
			t.Fatal("PutBundle took an invalid tenant")
		}
	})
}

func TestFunctionBundleReachesItsClaims(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		hash := strings.Repeat("cd", 32)
		f := store.Function{ID: uuid.NewString(), Name: "f", Payload: fnPayload, Isolation: faastype.Warm,
			CreatedAt: time.UnixMilli(1_700_000_000_000), Owner: "alice", Bundle: hash, BundleModules: []string{"mymod", "pkg"}}
		if err := st.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetFunction(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.Hash = got.Hash
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("GetFunction = %+v, want %+v", got, f)
		}
		small := store.Task{ID: uuid.NewString(), FunctionID: f.ID, FnPayload: f.Payload, ParamPayload: paramPayload,
			Owner: f.Owner, Bundle: f.Bundle}
		large := small
		large.ID = uuid.NewString()
		large.ParamPayload = strings.Repeat("A", 2<<20) // read apart from the claim script
		for _, task := range []store.Task{small, large} {
			if err := st.Enqueue(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		claims, err := st.Claim(ctx, "w", 2, time.Minute)
		if err != nil || len(claims) != 2 {
			t.Fatalf("Claim = %d claims, %v", len(claims), err)
		}
		for _, cl := range claims {
			if cl.Owner != "alice" || cl.Bundle != hash {
				t.Fatalf("claim %s: owner %q, bundle %q", cl.TaskID, cl.Owner, cl.Bundle)
			}
		}
		tk, err := st.GetTask(ctx, small.ID)
		if err != nil || tk.Bundle != hash {
			t.Fatalf("GetTask: bundle %q, %v", tk.Bundle, err)
		}
	})
}
