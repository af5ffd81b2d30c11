package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/api"
	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/store"
)

// apiFlags configure the HTTP API.
type apiFlags struct {
	addr       string
	maxBody    int64
	maxWait    time.Duration
	maxBatch   int
	tokensFile string
	tokens     string
	rate       autoNumber
	burst      autoNumber
	maxQueued  autoNumber
	bundle     bundle.Limits
}

// Quotas with tokens unless told otherwise; without tokens (a laptop, a
// course) there are none.
const (
	defaultRate      = 100
	defaultMaxQueued = 100_000
)

func addAPIFlags(fs *flagSet) *apiFlags {
	a := &apiFlags{maxBody: api.DefaultMaxBodyBytes, burst: autoNumber{integer: true}, maxQueued: autoNumber{integer: true},
		bundle: bundle.DefaultLimits}
	fs.StringVar(&a.addr, "addr", defaultAddr, "address the HTTP API listens on")
	fs.Var(byteSize{&a.maxBody}, "max-body", "largest request body accepted (413 beyond)")
	fs.DurationVar(&a.maxWait, "max-wait", api.DefaultMaxWait, "longest long-poll of GET /result?wait=")
	fs.IntVar(&a.maxBatch, "max-batch", api.DefaultMaxBatch, "most calls in one POST /execute_batch (413 beyond; at most "+strconv.Itoa(store.MaxBatch)+")")
	fs.StringVar(&a.tokensFile, "tokens-file", "", "`file` of API tokens, one tenant:token a line (# starts a comment line); "+
		"with tokens, every route but /healthz, /, /docs and /openapi.json needs \"Authorization: Bearer <token>\" and "+
		"each tenant sees only its own functions and tasks; without any, the API is open")
	fs.StringVar(&a.tokens, "tokens", "", "API tokens as `tenant:token,...` (added to --tokens-file's; a command line "+
		"is visible to other users of the machine: prefer the variable or the file)")
	fs.Var(&a.rate, "rate", fmt.Sprintf("`requests` per second one tenant may make to this API process, sustained; 429 with "+
		"Retry-After beyond; 0: no limit (default %d with tokens, no limit without)", defaultRate))
	fs.Var(&a.burst, "burst", "`requests` one tenant may make at once above --rate (default twice --rate)")
	fs.Var(&a.maxQueued, "max-queued", fmt.Sprintf("`tasks` one tenant may have queued; POST /execute_function and "+
		"/execute_batch answer 429 beyond; 0: no limit (default %d with tokens, no limit without)", defaultMaxQueued))
	fs.IntVar(&a.bundle.MaxFiles, "bundle-max-files", a.bundle.MaxFiles, "most `files` in the modules and packages "+
		"a function is registered with (413 beyond)")
	fs.Var(byteSize{&a.bundle.MaxBytes}, "bundle-max-bytes", "most bytes, uncompressed, of the modules and packages "+
		"a function is registered with (413 beyond)")
	return a
}

// options are the API's options; the tokens file is read here, and every
// token checked (a weak one is an error that names its tenant and line,
// never the token).
func (a *apiFlags) options(log *slog.Logger) (api.Options, error) {
	if a.maxBatch < 1 || a.maxBatch > store.MaxBatch {
		return api.Options{}, fmt.Errorf("--max-batch must be 1 to %d, got %d", store.MaxBatch, a.maxBatch)
	}
	if a.bundle.MaxFiles < 1 || a.bundle.MaxBytes < 1 || a.bundle.MaxFiles > bundle.MaxOpen.MaxFiles || a.bundle.MaxBytes > bundle.MaxOpen.MaxBytes {
		return api.Options{}, fmt.Errorf("--bundle-max-files must be 1 to %d and --bundle-max-bytes 1 to %d (what a sandbox opens)",
			bundle.MaxOpen.MaxFiles, bundle.MaxOpen.MaxBytes)
	}
	o := api.Options{MaxBodyBytes: a.maxBody, MaxWait: a.maxWait, MaxBatch: a.maxBatch, BundleLimits: a.bundle, Logger: log,
		DashboardSample: api.DefaultDashboardSample}
	var tokens []api.Token
	if a.tokensFile != "" {
		fi, err := os.Stat(a.tokensFile)
		if err != nil {
			return api.Options{}, fmt.Errorf("--tokens-file: %v", err)
		}
		text, err := os.ReadFile(a.tokensFile)
		if err != nil {
			return api.Options{}, fmt.Errorf("--tokens-file: %v", err)
		}
		tokens, err = api.ParseTokenFile(string(text), "tokens file "+a.tokensFile)
		if err != nil {
			return api.Options{}, err
		}
		if len(tokens) == 0 {
			return api.Options{}, fmt.Errorf("--tokens-file %s has no tenant:token line", a.tokensFile)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the tokens file can be read by other users of this machine; chmod 600 it", "file", a.tokensFile)
		}
	}
	if strings.TrimSpace(a.tokens) != "" {
		list, err := api.ParseTokenList(a.tokens, "--tokens (FAAS_TOKENS)")
		if err != nil {
			return api.Options{}, err
		}
		if len(list) == 0 {
			return api.Options{}, fmt.Errorf("--tokens (FAAS_TOKENS) has no tenant:token item")
		}
		tokens = append(tokens, list...)
	}
	if len(tokens) > 0 {
		auth, err := api.NewAuth(tokens)
		if err != nil {
			return api.Options{}, err
		}
		o.Auth = auth
	}
	rate, maxQueued := 0.0, 0.0
	if o.Auth != nil {
		rate, maxQueued = defaultRate, defaultMaxQueued
	}
	o.RateLimit = a.rate.or(rate)
	o.RateBurst = int(a.burst.or(0))
	if o.RateLimit > 0 && o.RateBurst == 0 {
		o.RateBurst = max(1, int(math.Ceil(2*o.RateLimit)))
	}
	if a.maxQueued.or(maxQueued) > math.MaxInt32 {
		return api.Options{}, fmt.Errorf("--max-queued %v is too large", a.maxQueued.val)
	}
	return o, nil
}

// queuedCap is the --max-queued the store enforces, given the options.
func (a *apiFlags) queuedCap(o api.Options) int {
	if o.Auth != nil {
		return int(a.maxQueued.or(defaultMaxQueued))
	}
	return int(a.maxQueued.or(0))
}

// logTenancy says at startup how the API is protected (tenant names, never
// tokens).
func logTenancy(log *slog.Logger, o api.Options, maxQueued, maxRunning int) {
	limit := func(n float64) any {
		if n <= 0 {
			return "none"
		}
		return n
	}
	attrs := []any{"rate_limit", limit(o.RateLimit), "burst", o.RateBurst, "max_queued", limit(float64(maxQueued))}
	if maxRunning >= 0 { // -1: set on the dispatchers
		attrs = append(attrs, "max_running", limit(float64(maxRunning)))
	}
	if o.Auth == nil {
		log.Info("no API tokens: the API is open to anyone who can reach it", attrs...)
		return
	}
	log.Info("API tokens configured", append([]any{"tenants", strings.Join(o.Auth.Tenants(), ",")}, attrs...)...)
}

func cmdAPI(args []string) int {
	fs := newFlagSet("api", "[--addr host:port] [--redis url] [flags]", `
Serves the HTTP API (register_function, execute_function, execute_batch,
status, result, task cancellation, runtime, healthz, metrics, docs and the
dashboard) on Redis. Run one or more dispatchers next to it to execute tasks.`)
	af := addAPIFlags(fs)
	sf := addStoreFlags(fs)
	wf := addWebhookFlags(fs, false)
	cf := addCommonFlags(fs)
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, err := cf.logger()
	if err != nil {
		return fail("api", err)
	}
	// Check the flags (the tokens above all) before waiting for Redis.
	sopts, err := sf.options()
	if err != nil {
		return fail("api", err)
	}
	aopts, err := af.options(log)
	if err != nil {
		return fail("api", err)
	}
	if aopts.Webhooks, err = wf.settings(); err != nil {
		return fail("api", err)
	}
	if aopts.Webhooks.Signer == nil {
		log.Info("no --webhook-secret: completion webhooks are off (callback_url is refused)")
	}
	ctx, cancel := signalContext(log)
	defer cancel()
	rdb, shown, err := sf.connect(ctx, log)
	if err != nil {
		return fail("api", err)
	}
	defer rdb.Close()
	sopts.MaxQueued = af.queuedCap(aopts)
	logTenancy(log, aopts, sopts.MaxQueued, -1)
	h := api.New(store.New(rdb, sopts), aopts)
	defer h.Close()
	log.Info("API listening", "addr", "http://"+af.addr, "redis", shown)
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
	var redisURL, passwordFile string
	fs.StringVar(&redisURL, "redis", "", redisURLHelp+"; empty runs an embedded in-memory Redis")
	sentinel := addSentinelFlags(fs)
	fs.StringVar(&passwordFile, "redis-password-file", "", redisPasswordHelp)
	maxAttempts := fs.Int("max-attempts", 3, "runs of a task whose sandbox process is lost before it FAILS")
	var resultTTL time.Duration
	addResultTTLFlag(fs, &resultTTL)
	df := addDispatchFlags(fs)
	sb := addSandboxFlags(fs)
	wf := addWebhookFlags(fs, true)
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
	if resultTTL < 0 {
		return fail("up", fmt.Errorf("--result-ttl must not be negative, got %v", resultTTL))
	}
	aopts, err := af.options(log)
	if err != nil {
		return fail("up", err)
	}
	if aopts.Webhooks, err = wf.settings(); err != nil {
		return fail("up", err)
	}
	if aopts.Webhooks.Signer == nil {
		// One process signs and serves the key: a secret of its own will
		// do until it restarts.
		if aopts.Webhooks.Signer, err = randomSecret(); err != nil {
			return fail("up", err)
		}
		log.Info("no --webhook-secret: completion webhooks are signed with a secret made up for this run " +
			"(GET /webhook_secret tells it; set FAAS_WEBHOOK_SECRET to keep one across restarts)")
	}
	if df.maxRunning < 0 {
		return fail("up", fmt.Errorf("--max-running must not be negative, got %d", df.maxRunning))
	}
	ctx, cancel := signalContext(log)
	defer cancel()

	var rdb redis.UniversalClient
	var where string
	if redisURL, err = sentinel.redisURL(redisURL); err != nil {
		return fail("up", err)
	}
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fail("up", fmt.Errorf("embedded redis: %w", err))
		}
		defer mr.Close()
		go expireLoop(ctx, mr)
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), Protocol: redisProtocol})
		where = "embedded (in memory, lost on exit) at redis://" + mr.Addr()
	} else if rdb, where, err = connectRedis(ctx, redisURL, passwordFile, 30*time.Second, log); err != nil {
		return fail("up", err)
	}
	defer rdb.Close()
	st := store.New(rdb, store.Options{MaxAttempts: *maxAttempts, ResultTTL: resultTTL,
		MaxQueued: af.queuedCap(aopts), MaxRunning: df.maxRunning})
	logTenancy(log, aopts, st.MaxQueued(), st.MaxRunning())

	pool, err := sb.pool(ctx, *workers, log)
	if err != nil {
		return fail("up", err)
	}
	defer pool.Close()

	h := api.New(st, aopts)
	defer h.Close()
	dcfg := df.config(st, log)
	if dcfg.Webhooks, err = wf.deliverer(st, aopts.Webhooks, log); err != nil {
		return fail("up", err)
	}
	var wg sync.WaitGroup
	dctx, stopDispatch := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := dispatch.RunLocal(dctx, dcfg, pool); err != nil {
			log.Error("dispatcher stopped", "err", err)
			cancel()
		}
	}()
	fmt.Fprintf(os.Stderr, upBanner, af.addr, *workers, where, af.addr)
	if aopts.Auth != nil {
		fmt.Fprintf(os.Stderr, "API tokens are on (tenants %s): send \"Authorization: Bearer <token>\" with every request;\n"+
			"the dashboard asks for a token.\n\n", strings.Join(aopts.Auth.Tenants(), ", "))
	}
	err = api.Serve(ctx, af.addr, h, log)
	stopDispatch()
	wg.Wait()
	if err != nil {
		return fail("up", err)
	}
	return 0
}

// expireLoop makes the embedded Redis expire keys as time passes: miniredis
// only counts a key's TTL down when told to (results TTL).
func expireLoop(ctx context.Context, mr *miniredis.Miniredis) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			mr.FastForward(now.Sub(last))
			last = now
		}
	}
}

const upBanner = `
WasmFaaS is up: http://%[1]s   (%[2]d sandboxes, Redis %[3]s)
Dashboard http://%[4]s/   API docs http://%[4]s/docs   metrics http://%[4]s/metrics

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
