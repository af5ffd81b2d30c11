package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkModes compares the end-to-end throughput of no-op tasks (enqueued
// in Redis, claimed, run, recorded) with two sandboxes in all: local mode
// (-w 2), push mode (one worker with 2 sandboxes) and pull mode (one worker
// with 2 sandboxes), each as separate faas processes on one redis-server.
// The modes take turns for FAAS_BENCH_ROUNDS rounds (default 3) of
// FAAS_BENCH_TASKS tasks (default 1000, 500 per sandbox); the reported
// figure per mode is the median round, and push/pull are also given as a
// fraction of local. Run it alone, it wants the machine:
//
//	go test -run '^$' -bench Modes -benchtime 1x ./tests/
func BenchmarkModes(b *testing.B) {
	needImage(b)
	n := envInt("FAAS_BENCH_TASKS", 1000)
	rounds := envInt("FAAS_BENCH_ROUNDS", 3)
	rdb := redistest.Start(b)
	url := "redis://" + redistest.Addrs(rdb)[0] + "/0"
	st := store.New(rdb, store.Options{})
	fn, args := payloads(b, 0, seq(n))
	hash, _ := pickle.HashBase64(fn)
	modes := []string{"local", "push", "pull"}
	rates := map[string][]float64{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for _, mode := range modes {
				rate := benchRound(b, mode, rdb, st, url, fn, hash, args)
				rates[mode] = append(rates[mode], rate)
				b.Logf("round %d %-5s %7.0f tasks/s", r+1, mode, rate)
			}
		}
	}
	med := map[string]float64{}
	for _, mode := range modes {
		rs := slices.Clone(rates[mode])
		slices.Sort(rs)
		med[mode] = rs[len(rs)/2]
		b.ReportMetric(med[mode], mode+"_tasks/s")
	}
	b.ReportMetric(med["push"]/med["local"], "push/local")
	b.ReportMetric(med["pull"]/med["local"], "pull/local")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d no-op tasks, 2 sandboxes, median of %d rounds:\n", n, rounds)
	for _, mode := range modes {
		fmt.Fprintf(&sb, "  %-5s %7.0f tasks/s  %.2fx local  (rounds %v)\n", mode, med[mode], med[mode]/med["local"], round0(rates[mode]))
	}
	b.Log(sb.String())
}

func round0(fs []float64) []int {
	out := make([]int, len(fs))
	for i, f := range fs {
		out[i] = int(f)
	}
	return out
}

// benchRound starts a fresh dispatcher (and worker), warms it up, then
// times len(args) tasks from the first enqueue to the last recorded result.
func benchRound(b *testing.B, mode string, rdb redis.UniversalClient, st *store.Store, url, fn, hash string, args []string) float64 {
	b.Helper()
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(freePort(b))
	common := []string{"--redis", url, "--log-level", "warn"}
	var procs []*proc
	if mode == "local" {
		procs = append(procs, startProc(b, "local", append([]string{"dispatcher", "-m", "local", "-w", "2"}, common...)...))
	} else {
		procs = append(procs, startProc(b, mode+"-dispatcher", append([]string{"dispatcher", "-m", mode, "-p", port, "--bind", "127.0.0.1"}, common...)...))
		procs = append(procs, startProc(b, mode+"-worker", mode+"-worker", "2", "tcp://127.0.0.1:"+port, "--log-level", "warn"))
	}
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	enqueue := func(as []string) []string {
		ids := make([]string, len(as))
		for i, a := range as {
			ids[i] = uuid.NewString()
			if err := st.Enqueue(ctx, store.Task{ID: ids[i], FunctionID: "f", FnPayload: fn, ParamPayload: a, FnHash: hash}); err != nil {
				b.Fatal(err)
			}
		}
		return ids
	}
	// Warm up: the processes are up, the sandboxes have the function.
	waitDone(b, st, enqueue(args[:20]), 2*time.Minute)

	ps := rdb.Subscribe(ctx, store.DefaultPrefix+"done")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	ch := ps.Channel(redis.WithChannelSize(len(args) + 100))
	cpu0 := map[string]time.Duration{}
	for _, p := range procs {
		own, kids := procCPU(p.cmd.Process.Pid)
		cpu0[p.name], cpu0[p.name+"/sandboxes"] = own, kids
	}
	redisPid := redisServerPid(b, rdb)
	cpu0["redis"], _ = procCPU(redisPid)
	start := time.Now()
	var ids []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ids = enqueue(args) }()
	seen := 0
	timeout := time.After(5 * time.Minute)
	for seen < len(args) {
		select {
		case <-ch:
			seen++
		case <-timeout:
			b.Fatalf("%s: only %d of %d tasks done", mode, seen, len(args))
		}
	}
	elapsed := time.Since(start)
	if os.Getenv("FAAS_BENCH_CPU") != "" {
		// CPU time per task of each process, to see where the time goes.
		var sb strings.Builder
		report := func(name string, d time.Duration) {
			fmt.Fprintf(&sb, " %s=%.0fµs", name, float64(d.Microseconds())/float64(len(args)))
		}
		for _, p := range procs {
			own, kids := procCPU(p.cmd.Process.Pid)
			report(p.name, own-cpu0[p.name])
			report(p.name+"/sandboxes", kids-cpu0[p.name+"/sandboxes"])
		}
		r, _ := procCPU(redisPid)
		report("redis", r-cpu0["redis"])
		b.Logf("%s CPU per task:%s", mode, sb.String())
	}
	wg.Wait()
	// Every task must really be COMPLETED (not failed fast).
	for _, id := range ids[:10] {
		if task, err := st.GetTask(ctx, id); err != nil || task.Status != faastype.Completed {
			b.Fatalf("%s: task %s: %s %+v %v", mode, id, task.Status, task.Error, err)
		}
	}
	return float64(len(args)) / elapsed.Seconds()
}

func waitDone(b *testing.B, st *store.Store, ids []string, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			task, err := st.GetTask(context.Background(), id)
			if err == nil && task.Status.Final() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("warm-up task %s not done", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// procCPU is the user+system CPU time of a process and of its children.
func procCPU(pid int) (own, children time.Duration) {
	read := func(path string) (ppid int, cpu time.Duration, ok bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, 0, false
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return 0, 0, false
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 13 {
			return 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		return ppid, time.Duration(ut+st) * 10 * time.Millisecond, true
	}
	_, own, _ = read(fmt.Sprintf("/proc/%d/stat", pid))
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if ppid, cpu, ok := read("/proc/" + e.Name() + "/stat"); ok && ppid == pid {
			children += cpu
		}
	}
	return own, children
}

func redisServerPid(b *testing.B, rdb redis.UniversalClient) int {
	texts, err := redisinfo.Sections(context.Background(), rdb, "server")
	if err != nil {
		b.Fatal(err)
	}
	if len(texts) != 1 {
		b.Fatalf("INFO server from %d nodes, want one redis-server", len(texts))
	}
	for _, l := range strings.Split(texts[0], "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}
