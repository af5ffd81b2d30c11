package redisinfo_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// The readings of one redis-server, and of a cluster of three primaries
// added up over the three: the SETs counted once each, wherever their keys
// went, from zero after ResetStat.
func TestReadings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		start func(t *testing.T) redis.UniversalClient
	}{
		{"redis-server", 1, func(t *testing.T) redis.UniversalClient { return redistest.Start(t) }},
		{"cluster", 3, func(t *testing.T) redis.UniversalClient { return redistest.StartCluster(t, 3, 0).Client(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := tc.start(t)
			const n = 30
			for i := range n {
				if err := rdb.Set(ctx, fmt.Sprintf("before-%d", i), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := redisinfo.ResetStat(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := rdb.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			cmds, err := redisinfo.Commands(ctx, rdb)
			if err != nil {
				t.Fatal(err)
			}
			if c := cmds["set"]; c.Calls != n || c.Usec <= 0 {
				t.Errorf("set: %+v, want %d calls and some time", c, n)
			}
			texts, err := redisinfo.Sections(ctx, rdb, "server")
			if err != nil {
				t.Fatal(err)
			}
			if len(texts) != tc.nodes {
				t.Errorf("INFO server from %d nodes, want %d", len(texts), tc.nodes)
			}
			mem, err := redisinfo.Sum(ctx, rdb, "memory", "used_memory")
			if err != nil {
				t.Fatal(err)
			}
			if mem <= 0 {
				t.Errorf("used_memory %v", mem)
			}
			if _, err := redisinfo.Sum(ctx, rdb, "memory", "no_such_field"); err == nil {
				t.Error("no error for a field INFO does not have")
			}
		})
	}
}
