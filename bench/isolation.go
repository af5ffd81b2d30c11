package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/runtime"
)

// IsolationRow is the per-task cost of one task kind run four ways with
// the same number of processes: the cost of isolation, side by side.
type IsolationRow struct {
	Kind         string  `json:"kind"`
	Processes    int     `json:"processes"`
	NativeWarmMS float64 `json:"native_warm_pool_ms"` // python3 multiprocessing pool, no isolation
	NativeProcMS float64 `json:"native_fresh_process_ms"`
	SandboxWarm  float64 `json:"sandbox_warm_ms"`  // our sandbox, instance reused for the function
	SandboxFresh float64 `json:"sandbox_fresh_ms"` // our sandbox, a pristine instance per task
}

// IsolationConfig sets how many tasks each way runs.
type IsolationConfig struct {
	Processes int            // parallel processes / sandboxes (default 2)
	Tasks     map[string]int // per kind (defaults below); fresh processes run a tenth
	ImageDir  string
	Python    string // default /usr/bin/python3
	NativePy  string // path of bench/native.py
	Log       func(format string, args ...any)
}

var defaultIsolationTasks = map[string]int{"noop": 2000, "fib20": 400, "arg1mb": 400, "sleep100ms": 60}

// Isolation measures every kind four ways. Per-task cost is wall time
// divided by tasks, with Processes running at once.
func Isolation(ctx context.Context, cfg IsolationConfig) ([]IsolationRow, error) {
	if cfg.Processes <= 0 {
		cfg.Processes = 2
	}
	if cfg.Python == "" {
		cfg.Python = "/usr/bin/python3"
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	var rows []IsolationRow
	for _, k := range Kinds() {
		n := defaultIsolationTasks[k.Name]
		if v, ok := cfg.Tasks[k.Name]; ok {
			n = v
		}
		row := IsolationRow{Kind: k.Name, Processes: cfg.Processes}
		var err error
		cfg.Log("isolation %s: native warm pool, %d tasks", k.Name, n)
		if row.NativeWarmMS, err = nativeCost(ctx, cfg, "warm-pool", k.Name, n); err != nil {
			return nil, err
		}
		cfg.Log("isolation %s: native process per task, %d tasks", k.Name, max(n/10, 10))
		if row.NativeProcMS, err = nativeCost(ctx, cfg, "fresh", k.Name, max(n/10, 10)); err != nil {
			return nil, err
		}
		for _, iso := range []faastype.Isolation{faastype.Warm, faastype.Fresh} {
			cfg.Log("isolation %s: sandbox %s, %d tasks", k.Name, iso, n)
			v, err := sandboxCost(ctx, cfg, k, iso, n)
			if err != nil {
				return nil, err
			}
			if iso == faastype.Warm {
				row.SandboxWarm = v
			} else {
				row.SandboxFresh = v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func nativeCost(ctx context.Context, cfg IsolationConfig, mode, kind string, n int) (float64, error) {
	out, err := exec.CommandContext(ctx, cfg.Python, cfg.NativePy, mode, kind, strconv.Itoa(n), strconv.Itoa(cfg.Processes)).Output()
	if err != nil {
		return 0, fmt.Errorf("bench: native %s %s: %w", mode, kind, err)
	}
	var r struct {
		Seconds float64 `json:"seconds"`
		N       int     `json:"n"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("bench: native %s %s output %q: %w", mode, kind, out, err)
	}
	return r.Seconds * 1000 / float64(r.N), nil
}

// sandboxCost runs n tasks on a pool of cfg.Processes sandboxes directly
// (no HTTP, no Redis): the sandbox's own cost.
func sandboxCost(ctx context.Context, cfg IsolationConfig, k Kind, iso faastype.Isolation, n int) (float64, error) {
	pool, err := runtime.NewPool(ctx, runtime.PoolConfig{Size: cfg.Processes, ImageDir: cfg.ImageDir})
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	fn, _ := base64.StdEncoding.DecodeString(fnPayloads[k.Fn])
	task := faastype.Task{Function: string(k.Fn), Fn: fn, Args: k.Args, Isolation: iso}
	runAll := func(count int) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, cfg.Processes)
		for w := 0; w < cfg.Processes; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for int(next.Add(1)) <= count {
					res, err := pool.Run(ctx, task)
					if err == nil && res.Status != faastype.Completed {
						err = fmt.Errorf("task failed: %+v", res.Error)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	if err := runAll(2 * cfg.Processes); err != nil { // warm up
		return 0, err
	}
	start := time.Now()
	if err := runAll(n); err != nil {
		return 0, fmt.Errorf("bench: sandbox %s %s: %w", iso, k.Name, err)
	}
	return float64(time.Since(start)) / float64(time.Millisecond) / float64(n), nil
}
