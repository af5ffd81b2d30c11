package store_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// BenchmarkNoopScripts runs b.N no-op tasks' store path (an enqueue, then
// a completion with the next claim, as a local sandbox makes them) on a
// real redis-server and reports what Redis counted per task in INFO
// commandstats: script calls, the commands run inside them, and the
// microseconds of both, for each of the two steps.
//
// FAAS_BENCH_REDIS=host:port runs it against that server instead (flushed
// first); with FAAS_BENCH_CALLGRIND set, the steps are bracketed with
// callgrind_control -z/-d, so that a redis-server run under valgrind
// --tool=callgrind dumps one profile per step (instructions are repeatable
// on a VM whose speed drifts): see bench/results/redis-scripts.txt.
func BenchmarkNoopScripts(b *testing.B) {
	var rdb redis.UniversalClient
	if addr := os.Getenv("FAAS_BENCH_REDIS"); addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		rdb.FlushAll(context.Background())
	} else {
		rdb = redistest.Start(b)
	}
	callgrind := func(op string) {
		if os.Getenv("FAAS_BENCH_CALLGRIND") != "" {
			if err := exec.Command("callgrind_control", op).Run(); err != nil {
				b.Fatalf("callgrind_control %s: %v", op, err)
			}
		}
	}
	st := store.New(rdb, store.Options{ResultTTL: 24 * time.Hour})
	ctx := context.Background()
	fn := strings.Repeat("A", 600) // about a no-op function's pickle, in base64
	if err := redisinfo.ResetStat(ctx, rdb); err != nil {
		b.Fatal(err)
	}
	callgrind("-z")
	b.ResetTimer()
	for range b.N {
		if err := st.Enqueue(ctx, store.Task{ID: uuid.NewString(), FunctionID: "f", FnPayload: fn, ParamPayload: paramPayload, FnHash: "h"}); err != nil {
			b.Fatal(err)
		}
	}
	callgrind("-d")
	reportCommands(b, rdb, "enqueue")
	callgrind("-z")
	held, err := st.Claim(ctx, "w", 1, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	done := store.Outcome{Status: faastype.Completed, Result: "gAROLg==", Timings: &faastype.Timings{}}
	for len(held) > 0 {
		c := held[0]
		_, next, err := st.CompleteAndClaim(ctx, c.Ref(), done, "w", 1, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		held = next
	}
	callgrind("-d")
	reportCommands(b, rdb, "complete+claim")
}

// reportCommands reports INFO commandstats per task since the last reset
// (script calls apart from the commands inside them), and resets it.
func reportCommands(b *testing.B, rdb redis.UniversalClient, step string) {
	ctx := context.Background()
	cmds, err := redisinfo.Commands(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	var scripts, scriptUS, inner, innerUS float64
	for name, c := range cmds {
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		if name == "evalsha" || name == "eval" {
			scripts, scriptUS = scripts+float64(c.Calls), scriptUS+c.Usec
		} else {
			inner, innerUS = inner+float64(c.Calls), innerUS+c.Usec
		}
	}
	n := float64(b.N)
	b.ReportMetric(scripts/n, step+"-scripts/task")
	b.ReportMetric(inner/n, step+"-cmds/task")
	b.ReportMetric(scriptUS/n, step+"-script-µs/task")
	b.ReportMetric(innerUS/n, step+"-cmd-µs/task")
	if err := redisinfo.ResetStat(ctx, rdb); err != nil {
		b.Fatal(err)
	}
}
