package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/worker"
)

func TestMain(m *testing.M) {
	runtime.RunChildIfRequested()
	os.Exit(m.Run())
}

// instantRunner "runs" a task at once: what is left to measure is the
// dispatcher, the wire and Redis.
type instantRunner struct{ n int }

func (r instantRunner) Size() int                     { return r.n }
func (r instantRunner) Limits() faastype.Limits       { return faastype.DefaultLimits }
func (r instantRunner) Isolation() faastype.Isolation { return faastype.Warm }
func (r instantRunner) Stats() faastype.PoolStats     { return faastype.PoolStats{Size: r.n} }
func (r instantRunner) Run(ctx context.Context, t faastype.Task) (*faastype.Result, error) {
	return &faastype.Result{Status: faastype.Completed, Payload: []byte("\x80\x04K\x51.")}, nil
}

// BenchmarkOverhead is the throughput of push, pull and local mode in one
// process with tasks that take no time, to profile the dispatch path
// itself:
//
//	go test -run '^$' -bench Overhead -benchtime 3000x -cpuprofile cpu.out ./worker/
//
// With FAAS_BENCH_SANDBOX=1 the tasks run on a real pool of 2 sandboxes
// (a no-op Python function): the whole path but Redis and the sandbox
// processes is then in this process's profile.
func BenchmarkOverhead(b *testing.B) {
	fn, args := "gAR9lC4=", "gAR9lC4="
	real := os.Getenv("FAAS_BENCH_SANDBOX") != ""
	if real {
		p := pyfixture.Pickles(b, "def noop(x): return x", "noop", "((1,), {})")
		fn, args = p[0], p[1]
	}
	for _, mode := range []string{"local", "push", "pull"} {
		b.Run(mode, func(b *testing.B) {
			rdb := redistest.Start(b)
			st := store.New(rdb, store.Options{})
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			cfg := dispatch.Config{Store: st, Name: "d", Logger: quiet}
			var pool dispatch.Runner = instantRunner{2}
			if real {
				p, err := runtime.NewPool(context.Background(), runtime.PoolConfig{Size: 2, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				pool = p
			}
			if mode == "local" {
				wg.Add(1)
				go func() { defer wg.Done(); dispatch.RunLocal(ctx, cfg, pool) }()
			} else {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				url := "tcp://" + l.Addr().String()
				l.Close()
				rc := dispatch.RemoteConfig{Config: cfg, Listen: url}
				wc := worker.Config{URL: url, Name: "w", Logger: quiet}
				run, runW := dispatch.RunPush, worker.RunPush
				if mode == "pull" {
					run, runW = dispatch.RunPull, worker.RunPull
				}
				wg.Add(2)
				go func() { defer wg.Done(); run(ctx, rc) }()
				go func() { defer wg.Done(); runW(ctx, wc, pool) }()
			}
			ids := enqueueNoop(b, st, 10, fn, args)
			waitAllDone(b, st, ids)
			ps := rdb.Subscribe(context.Background(), store.DefaultPrefix+"done")
			defer ps.Close()
			ps.Receive(context.Background())
			ch := ps.Channel(redis.WithChannelSize(b.N + 100))
			b.ResetTimer()
			go enqueueNoop(b, st, b.N, fn, args)
			for range b.N {
				<-ch
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

func enqueueNoop(b *testing.B, st *store.Store, n int, fn, args string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		if err := st.Enqueue(context.Background(), store.Task{ID: ids[i], FunctionID: "f", FnPayload: fn, ParamPayload: args}); err != nil {
			b.Error(err)
			return nil
		}
	}
	return ids
}

func waitAllDone(b *testing.B, st *store.Store, ids []string) {
	deadline := time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			t, err := st.GetTask(context.Background(), id)
			if err == nil && t.Status.Final() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("warm-up tasks not done")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
