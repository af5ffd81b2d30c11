package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// BenchmarkRedisMemoryPerTask measures what a no-op task holds in a real
// redis-server (INFO used_memory before and after, over 20,000 tasks):
// queued, and finished with and without a result TTL. The payloads are the
// sizes `faas bench --kind noop` sends (a dill function of ~560 base64
// bytes, arguments of 24). b.N is ignored: one pass is the measurement.
//
//	go test -run '^$' -bench RedisMemoryPerTask -benchtime 1x ./store/
func BenchmarkRedisMemoryPerTask(b *testing.B) {
	const tasks = 20000
	fn := strings.Repeat("A", 560)
	for _, ttl := range []time.Duration{store.DefaultResultTTL, 0} {
		name := "ttl=" + ttl.String()
		if ttl == 0 {
			name = "ttl=none"
		}
		b.Run(name, func(b *testing.B) {
			rdb := redistest.Start(b)
			ctx := context.Background()
			st := store.New(rdb, store.Options{ResultTTL: ttl})
			used := func() float64 {
				n, err := redisinfo.Sum(ctx, rdb, "memory", "used_memory")
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
			empty := used()
			tmpl := store.Task{FunctionID: uuid.NewString(), FnPayload: fn, FnHash: strings.Repeat("f", 64), Isolation: faastype.Warm}
			for i := 0; i < tasks; i += 500 {
				ids := make([]string, 500)
				params := make([]string, 500)
				for j := range ids {
					ids[j], params[j] = uuid.NewString(), "gASVCgAAAAAAAAApfZSGlC4="
				}
				if err := st.EnqueueBatch(ctx, tmpl, ids, params); err != nil {
					b.Fatal(err)
				}
			}
			queued := used()
			for {
				cls, err := st.Claim(ctx, "node-1", 100, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if len(cls) == 0 {
					break
				}
				for _, cl := range cls {
					if _, err := st.Complete(ctx, cl.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAROLg==",
						Timings: &faastype.Timings{Deserialize: 0.000122, Run: 0.000019, Serialize: 0.000016, Total: 0.000253}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			finished := used()
			b.ReportMetric((queued-empty)/tasks, "B/queued-task")
			b.ReportMetric((finished-empty)/tasks, "B/finished-task")
			rdb.Do(ctx, "FLUSHALL")
		})
	}
}
