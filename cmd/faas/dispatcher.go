package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
)

// storeFlags select the Redis server and the store's settings.
type storeFlags struct {
	url          string
	sentinel     *sentinelFlags
	passwordFile string
	maxAttempts  int
	resultTTL    time.Duration
}

func addStoreFlags(fs *flagSet) *storeFlags {
	s := &storeFlags{}
	fs.StringVar(&s.url, "redis", "redis://127.0.0.1:6379/0", redisURLHelp)
	s.sentinel = addSentinelFlags(fs)
	fs.StringVar(&s.passwordFile, "redis-password-file", "", redisPasswordHelp)
	fs.IntVar(&s.maxAttempts, "max-attempts", 3, "runs of a task whose worker is lost before it FAILS with WORKER_LOST")
	addResultTTLFlag(fs, &s.resultTTL)
	return s
}

// addResultTTLFlag registers --result-ttl. Every process that makes tasks
// final (API: cancel; dispatchers: results, lost workers) applies it, so
// give them all the same value.
func addResultTTLFlag(fs *flagSet, ttl *time.Duration) {
	fs.DurationVar(ttl, "result-ttl", store.DefaultResultTTL, "how long a finished task is kept before Redis removes it (0: forever)")
}

// connect opens the Redis the flags name (connectRedis).
func (s *storeFlags) connect(ctx context.Context, log *slog.Logger) (redis.UniversalClient, string, error) {
	raw, err := s.sentinel.redisURL(s.url)
	if err != nil {
		return nil, "", err
	}
	return connectRedis(ctx, raw, s.passwordFile, 30*time.Second, log)
}

func (s *storeFlags) options() (store.Options, error) {
	if s.resultTTL < 0 {
		return store.Options{}, fmt.Errorf("--result-ttl must not be negative, got %v", s.resultTTL)
	}
	return store.Options{MaxAttempts: s.maxAttempts, ResultTTL: s.resultTTL}, nil
}

// dispatchFlags are the settings every dispatcher mode shares.
type dispatchFlags struct {
	name       string
	lease      time.Duration
	drain      time.Duration
	maxRunning int
	bundles    int64
}

func addDispatchFlags(fs *flagSet) *dispatchFlags {
	d := &dispatchFlags{bundles: dispatch.DefaultBundleCache}
	fs.StringVar(&d.name, "name", "", "name of this dispatcher in task leases (default host:pid)")
	fs.DurationVar(&d.lease, "lease", 10*time.Second, "lease on a running task; renewed every lease/3, reclaimed when it expires")
	fs.DurationVar(&d.drain, "drain", 5*time.Second, "on shutdown, how long running tasks may finish before they are requeued")
	fs.IntVar(&d.maxRunning, "max-running", 0, "`tasks` of one tenant running at once, counted across every dispatcher "+
		"(a tenant at its cap waits while others' tasks start; give every dispatcher the same value); 0: no limit")
	fs.Var(byteSize{&d.bundles}, "bundle-cache", "memory for the functions' bundles read from Redis, kept for the next "+
		"tasks (its own sandboxes and the workers that fetch them); least recently used first out")
	return d
}

func (d *dispatchFlags) config(st *store.Store, log *slog.Logger) dispatch.Config {
	return dispatch.Config{Store: st, Name: d.name, Lease: d.lease, Drain: d.drain, BundleCache: d.bundles, Logger: log}
}

// sandboxFlags configure a local sandbox pool.
type sandboxFlags struct {
	image     string
	isolation string
	walls     string
	limits    *limitFlags
}

func addSandboxFlags(fs *flagSet) *sandboxFlags {
	s := &sandboxFlags{}
	fs.StringVar(&s.image, "image", "", "guest image directory (default: the one make build made for this binary)")
	fs.StringVar(&s.isolation, "isolation", "warm", "warm: each function's own setting decides; fresh: a pristine interpreter for every task")
	fs.StringVar(&s.walls, "sandbox-walls", string(runtime.WallsBestEffort), "the OS-level wall each sandbox process puts up "+
		"around itself before its first task (no_new_privs, Landlock, nobody when started as root, no capabilities, rlimits, seccomp): "+
		"best-effort puts up what the kernel has and reports the rest; strict refuses to run sandboxes without all of "+
		"them; off puts up none (debugging only)")
	s.limits = addLimitFlags(fs.FlagSet)
	return s
}

func (s *sandboxFlags) pool(ctx context.Context, n int, log *slog.Logger) (*runtime.Pool, error) {
	iso, err := faastype.ParseIsolation(s.isolation)
	if err != nil {
		return nil, fmt.Errorf("--isolation: %w", err)
	}
	walls, err := runtime.ParseWalls(s.walls)
	if err != nil {
		return nil, fmt.Errorf("--sandbox-walls: %w", err)
	}
	log.Info("starting sandboxes", "count", n, "isolation", iso, "walls", walls)
	return runtime.NewPool(ctx, runtime.PoolConfig{Size: n, Limits: s.limits.limits(), ImageDir: s.image, Isolation: iso,
		Walls: walls, Logger: log})
}

func cmdDispatcher(args []string) int {
	fs := newFlagSet("dispatcher", "-m local|push|pull [-w sandboxes] [-p port] [flags]", `
Takes tasks from the Redis queue under a lease and gets them run:
  local  on -w sandboxes in this process
  push   on push workers that connect to tcp://*:<port> (ZeroMQ ROUTER)
  pull   on pull workers that ask tcp://*:<port> for work (ZeroMQ REP)
Results are recorded through the lease check, so each task is recorded once.
With --webhook-secret it also delivers completion webhooks (callback_url).`)
	var mode string
	fs.StringVar(&mode, "m", "local", "mode: local, push or pull")
	fs.StringVar(&mode, "mode", "local", "same as -m")
	workers := fs.Int("w", 2, "local mode: number of sandboxes")
	port := fs.Int("p", 5555, "push/pull mode: TCP port for workers")
	bind := fs.String("bind", "0.0.0.0", "push/pull mode: address to listen on")
	sf := addStoreFlags(fs)
	df := addDispatchFlags(fs)
	sb := addSandboxFlags(fs)
	rf := addRemoteFlags(fs, true)
	grace := fs.Duration("grace", 5*time.Second, "push/pull mode: a task whose result is not back by its timeout plus this is requeued")
	wf := addWebhookFlags(fs, true)
	cf := addCommonFlags(fs)
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, err := cf.logger()
	if err != nil {
		return fail("dispatcher", err)
	}
	hookSettings, err := wf.settings()
	if err != nil {
		return fail("dispatcher", err)
	}
	ctx, cancel := signalContext(log)
	defer cancel()
	rdb, _, err := sf.connect(ctx, log)
	if err != nil {
		return fail("dispatcher", err)
	}
	defer rdb.Close()
	opts, err := sf.options()
	if err != nil {
		return fail("dispatcher", err)
	}
	if df.maxRunning < 0 {
		return fail("dispatcher", fmt.Errorf("--max-running must not be negative, got %d", df.maxRunning))
	}
	opts.MaxRunning = df.maxRunning
	st := store.New(rdb, opts)
	cfg := df.config(st, log)
	if cfg.Webhooks, err = wf.deliverer(st, hookSettings, log); err != nil {
		return fail("dispatcher", err)
	}
	switch mode {
	case "local":
		if *workers < 1 {
			return fail("dispatcher", fmt.Errorf("-w must be at least 1"))
		}
		pool, err := sb.pool(ctx, *workers, log)
		if err != nil {
			return fail("dispatcher", err)
		}
		defer pool.Close()
		err = dispatch.RunLocal(ctx, cfg, pool)
		if err != nil {
			return fail("dispatcher", err)
		}
	case "push", "pull":
		if err := runRemote(ctx, mode, cfg, *bind, *port, rf, *grace, sb); err != nil {
			return fail("dispatcher", err)
		}
	default:
		return fail("dispatcher", fmt.Errorf("unknown mode %q (local, push or pull)", mode))
	}
	return 0
}
