package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// eachBackend runs fn as a subtest on a fresh Redis of each of
// redistest.Backends (a real redis-server, miniredis, Sentinel).
func eachBackend(t *testing.T, opts store.Options, fn func(t *testing.T, st *store.Store, rdb redis.UniversalClient)) {
	t.Helper()
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			rdb := b.Start(t)
			fn(t, store.New(rdb, opts), rdb)
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// payloadHash is the hash the store keeps for a base64 function payload.
func payloadHash(t *testing.T, b64 string) string {
	t.Helper()
	b, err := pickle.DecodeBase64(b64)
	if err != nil {
		t.Fatal(err)
	}
	return pickle.Hash(b)
}
