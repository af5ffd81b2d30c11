package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/api"
	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/store"
)

// apiFlags configure the HTTP API.
type apiFlags struct {
	addr    string
	maxBody int64
	maxWait time.Duration
}

func addAPIFlags(fs *flagSet) *apiFlags {
	a := &apiFlags{maxBody: api.DefaultMaxBodyBytes}
	fs.StringVar(&a.addr, "addr", "127.0.0.1:8000", "address the HTTP API listens on")
	fs.Var(byteSize{&a.maxBody}, "max-body", "largest request body accepted (413 beyond)")
	fs.DurationVar(&a.maxWait, "max-wait", api.DefaultMaxWait, "longest long-poll of GET /result?wait=")
	return a
}

func cmdAPI(args []string) int {
	fs := newFlagSet("api", "[--addr host:port] [--redis url] [flags]", `
Serves the HTTP API (register_function, execute_function, status, result,
healthz) on Redis. Run one or more dispatchers next to it to execute tasks.`)
	af := addAPIFlags(fs)
	sf := addStoreFlags(fs)
	cf := addCommonFlags(fs)
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, err := cf.logger()
	if err != nil {
		return fail("api", err)
	}
	ctx, cancel := signalContext(log)
	defer cancel()
	rdb, err := connectRedis(ctx, sf.url, 30*time.Second, log)
	if err != nil {
		return fail("api", err)
	}
	defer rdb.Close()
	h := api.New(store.New(rdb, sf.options()), api.Options{MaxBodyBytes: af.maxBody, MaxWait: af.maxWait, Logger: log})
	defer h.Close()
	log.Info("API listening", "addr", "http://"+af.addr, "redis", sf.url)
	if err := api.Serve(ctx, af.addr, h, log); err != nil {
		return fail("api", err)
	}
	return 0
}

func cmdUp(args []string) int {
	fs := newFlagSet("up", "[--addr host:port] [-w sandboxes] [--redis url] [flags]", `
Runs everything on one machine in one process: the HTTP API, a local
dispatcher with -w sandboxes, and an embedded in-memory Redis (unless --redis
names a real one, which keeps tasks across restarts and lets other
dispatchers and workers join). Ctrl-C stops it cleanly.`)
	af := addAPIFlags(fs)
	workers := fs.Int("w", defaultSandboxes(), "number of sandboxes")
	var redisURL string
	fs.StringVar(&redisURL, "redis", "", "Redis URL; empty runs an embedded in-memory Redis")
	maxAttempts := fs.Int("max-attempts", 3, "runs of a task whose sandbox process is lost before it FAILS")
	df := addDispatchFlags(fs)
	sb := addSandboxFlags(fs)
	cf := addCommonFlags(fs)
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, err := cf.logger()
	if err != nil {
		return fail("up", err)
	}
	if *workers < 1 {
		return fail("up", fmt.Errorf("-w must be at least 1"))
	}
	ctx, cancel := signalContext(log)
	defer cancel()

	var rdb *redis.Client
	where := redisURL
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fail("up", fmt.Errorf("embedded redis: %w", err))
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		where = "embedded (in memory, lost on exit) at redis://" + mr.Addr()
	} else if rdb, err = connectRedis(ctx, redisURL, 30*time.Second, log); err != nil {
		return fail("up", err)
	}
	defer rdb.Close()
	st := store.New(rdb, store.Options{MaxAttempts: *maxAttempts})

	pool, err := sb.pool(ctx, *workers, log)
	if err != nil {
		return fail("up", err)
	}
	defer pool.Close()

	h := api.New(st, api.Options{MaxBodyBytes: af.maxBody, MaxWait: af.maxWait, Logger: log})
	defer h.Close()
	var wg sync.WaitGroup
	dctx, stopDispatch := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := dispatch.RunLocal(dctx, df.config(st, log), pool); err != nil {
			log.Error("dispatcher stopped", "err", err)
			cancel()
		}
	}()
	fmt.Fprintf(os.Stderr, upBanner, af.addr, *workers, where, af.addr)
	err = api.Serve(ctx, af.addr, h, log)
	stopDispatch()
	wg.Wait()
	if err != nil {
		return fail("up", err)
	}
	return 0
}

const upBanner = `
WasmFaaS is up: http://%[1]s   (%[2]d sandboxes, Redis %[3]s)

Submit a first function (Debian: apt-get install python3-dill python3-requests):

  /usr/bin/python3 - <<'PY'
  import codecs, dill, requests, time
  ser = lambda o: codecs.encode(dill.dumps(o), "base64").decode()
  de = lambda s: dill.loads(codecs.decode(s.encode(), "base64"))
  url = "http://%[4]s"
  fid = requests.post(url + "/register_function", json={"name": "double", "payload": ser(lambda x: 2 * x)}).json()["function_id"]
  tid = requests.post(url + "/execute_function", json={"function_id": fid, "payload": ser(((21,), {}))}).json()["task_id"]
  print(de(requests.get(url + "/result/" + tid + "?wait=10s").json()["result"]))
  PY

Ctrl-C stops it.

`
