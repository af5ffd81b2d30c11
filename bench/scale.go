package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
)

// The scaling study: how the cost of a task grows with the work around it
// (queue depth, tenants, worker processes, payload sizes), each part on
// fresh processes started and stopped here, like the throughput study.

// ScaleConfig says what the scaling study measures.
type ScaleConfig struct {
	Study      StudyConfig
	QueueTasks int     // tasks enqueued before the dispatcher starts
	NoTTLTasks int     // tasks of the run that measures finished tasks without a result TTL
	Tenants    []int   // tenant counts with work queued
	TenantWork int     // tasks per tenant point, spread over the tenants
	Workers    []int   // push and pull worker processes (2 sandboxes each)
	Payloads   []int64 // argument (and result) sizes in bytes
}

// ScaleResults is what the study found.
type ScaleResults struct {
	Date     string         `json:"date"`
	Machine  string         `json:"machine"`
	Commit   string         `json:"commit,omitempty"`
	Command  string         `json:"command"`
	Queue    *QueueDepth    `json:"queue_depth,omitempty"`
	Tenants  []TenantPoint  `json:"tenants,omitempty"`
	Workers  []Row          `json:"workers,omitempty"`
	Payloads []PayloadPoint `json:"payloads,omitempty"`
}

// QueueDepth is the queue-depth part: a deep queue enqueued, then drained.
type QueueDepth struct {
	Tasks            int     `json:"tasks"`
	EnqueueSeconds   float64 `json:"enqueue_seconds"`
	EnqueueRate      float64 `json:"enqueue_per_second"`
	BytesPerQueued   float64 `json:"redis_bytes_per_queued_task"`
	BytesPerFinished float64 `json:"redis_bytes_per_finished_task"`        // with the default 24 h result TTL
	BytesNoTTL       float64 `json:"redis_bytes_per_finished_task_no_ttl"` // --result-ttl 0
	NoTTLTasks       int     `json:"no_ttl_tasks"`
	DrainSeconds     float64 `json:"drain_seconds"`
	Windows          []Drain `json:"windows"`
}

// Drain is one window of the drain: its throughput and what Redis spent
// per script call (claims and completions), against the queue left.
type Drain struct {
	Remaining    int64   `json:"remaining"`
	TasksPerSec  float64 `json:"tasks_per_second"`
	ScriptUSCall float64 `json:"redis_us_per_script_call"`
}

// TenantPoint is one tenant count.
type TenantPoint struct {
	Tenants      int     `json:"tenants"`
	Tasks        int     `json:"tasks"`
	TasksPerSec  float64 `json:"tasks_per_second"`
	ScriptUSCall float64 `json:"redis_us_per_script_call"`
	RedisUSTask  float64 `json:"redis_cpu_us_per_task"`
	// FirstStartRank is, over the tenants, the largest position of a
	// tenant's first started task among all starts (1-based), divided by
	// the number of tenants: 1 means every tenant's first task started
	// within the first round of the round robin.
	FirstStartRank float64 `json:"worst_first_start_rank_per_tenant"`
	// ColdShare is the share of the tasks that started on an interpreter
	// that had not loaded their function (warm reuse is per function, and
	// each tenant here has its own).
	ColdShare float64 `json:"cold_start_share"`
}

// PayloadPoint is one payload size: arguments of that size, echoed back.
type PayloadPoint struct {
	Bytes int64   `json:"bytes"`
	Row   Row     `json:"row"`
	MBps  float64 `json:"mb_per_second"` // arguments in plus results out
}

// Scale runs the study's parts; a part with nothing to do (zero tasks, no
// sizes) is left out.
func Scale(ctx context.Context, cfg ScaleConfig, progress func(kind string) Config) (*ScaleResults, error) {
	cfg.Study = cfg.Study.withDefaults()
	res := &ScaleResults{}
	log := cfg.Study.Log
	if cfg.QueueTasks > 0 {
		log.Info("scale: queue depth", "tasks", cfg.QueueTasks)
		q, err := queueDepth(ctx, cfg)
		if err != nil {
			return res, err
		}
		res.Queue = q
	}
	for _, n := range cfg.Tenants {
		log.Info("scale: tenants", "tenants", n)
		p, err := tenantPoint(ctx, cfg.Study, n, max(cfg.TenantWork, n))
		if err != nil {
			return res, err
		}
		res.Tenants = append(res.Tenants, p)
	}
	noop, _ := KindByName("noop")
	for _, mode := range []string{"push", "pull"} {
		for _, w := range cfg.Workers {
			log.Info("scale: workers", "mode", mode, "workers", w)
			d, err := startSpec(ctx, cfg.Study, spec{mode: mode, sandboxes: 2, workers: w})
			if err != nil {
				return res, err
			}
			row, err := measure(ctx, cfg.Study, d, mode, 2*w, noop, progress("noop"))
			d.stop()
			if err != nil {
				return res, err
			}
			row.Sandboxes = 2 * w
			res.Workers = append(res.Workers, row)
		}
	}
	for _, size := range cfg.Payloads {
		log.Info("scale: payloads", "bytes", size)
		p, err := payloadPoint(ctx, cfg.Study, size, progress)
		if err != nil {
			return res, err
		}
		res.Payloads = append(res.Payloads, p)
	}
	return res, nil
}

// usedMemory is redis-server's used_memory (added up over the nodes of a
// cluster).
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (float64, error) {
	n, err := redisinfo.Sum(ctx, rdb, "memory", "used_memory")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	return n, nil
}

// scriptStats are the EVALSHA (and EVAL) calls and their microseconds so
// far (added up over the nodes of a cluster).
func scriptStats(ctx context.Context, rdb redis.UniversalClient) (calls, usec float64, err error) {
	cmds, err := redisinfo.Commands(ctx, rdb)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	for _, name := range []string{"evalsha", "eval"} {
		calls += float64(cmds[name].Calls)
		usec += cmds[name].Usec
	}
	return calls, usec, nil
}

// enqueue creates n tasks of kind with POST /execute_batch (batch calls
// per request, conc requests at a time) and returns their ids.
func enqueue(ctx context.Context, c *client, fid string, k Kind, n, batch, conc int) ([]string, error) {
	args := base64.StdEncoding.EncodeToString(k.Args)
	ids := make([]string, 0, n)
	var mu sync.Mutex
	var next atomic.Int64
	var firstErr error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := int(next.Add(int64(batch))) - batch
				if start >= n {
					return
				}
				size := min(batch, n-start)
				payloads := make([]string, size)
				for i := range payloads {
					payloads[i] = args
				}
				var out struct {
					TaskIDs []string `json:"task_ids"`
				}
				err := c.post(ctx, "/execute_batch", map[string]any{"function_id": fid, "payloads": payloads}, &out)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ids = append(ids, out.TaskIDs...)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return ids, fmt.Errorf("bench: enqueue: %w", firstErr)
	}
	return ids, ctx.Err()
}

func newClient(url, token string) *client {
	return &client{url: strings.TrimRight(url, "/"), token: token, wait: 10 * time.Second,
		http: &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}}
}

// queueLeft is what the store still holds of the work: the ids in the
// given queues and the leases (cheap commands only: the study must not
// slow down the Redis it measures).
func queueLeft(ctx context.Context, rdb redis.UniversalClient, queues []string) (int64, error) {
	pipe := rdb.Pipeline()
	leases := pipe.ZCard(ctx, "faas:leases")
	lens := make([]*redis.IntCmd, len(queues))
	for i, q := range queues {
		lens[i] = pipe.LLen(ctx, q)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	n := leases.Val()
	for _, l := range lens {
		n += l.Val()
	}
	return n, nil
}

// drain waits until the given queues and the leases are empty, sampling
// every period.
func drain(ctx context.Context, rdb redis.UniversalClient, queues []string, period time.Duration) (windows []Drain, seconds float64, err error) {
	start := time.Now()
	left, err := queueLeft(ctx, rdb, queues)
	if err != nil {
		return nil, 0, err
	}
	calls, usec, err := scriptStats(ctx, rdb)
	if err != nil {
		return nil, 0, err
	}
	last := time.Now()
	idle := 0
	for left > 0 && ctx.Err() == nil {
		time.Sleep(period)
		now := time.Now()
		l, err := queueLeft(ctx, rdb, queues)
		if err != nil {
			return windows, 0, err
		}
		c, u, err := scriptStats(ctx, rdb)
		if err != nil {
			return windows, 0, err
		}
		w := Drain{Remaining: l, TasksPerSec: float64(left-l) / now.Sub(last).Seconds()}
		if c > calls {
			w.ScriptUSCall = (u - usec) / (c - calls)
		}
		windows = append(windows, w)
		if l == left {
			if idle++; idle > int(time.Minute/period) {
				return windows, 0, fmt.Errorf("bench: the queue stopped draining at %d tasks", l)
			}
		} else {
			idle = 0
		}
		left, calls, usec, last = l, c, u, now
	}
	return windows, time.Since(start).Seconds(), ctx.Err()
}

func queueDepth(ctx context.Context, cfg ScaleConfig) (*QueueDepth, error) {
	noop, _ := KindByName("noop")
	run := func(n int, dispArgs []string, q *QueueDepth) (perFinished float64, err error) {
		sp := spec{mode: "local", sandboxes: 2, workers: 1, runnersLater: true, dispArgs: dispArgs,
			apiArgs: []string{"--max-batch", "1000"}}
		d, err := startSpec(ctx, cfg.Study, sp)
		if err != nil {
			return 0, err
		}
		defer d.stop()
		c := newClient(d.url, "")
		fid, err := c.register(ctx, noop)
		if err != nil {
			return 0, err
		}
		m0, err := usedMemory(ctx, d.rdb)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		if _, err := enqueue(ctx, c, fid, noop, n, 1000, 4); err != nil {
			return 0, err
		}
		enq := time.Since(t0).Seconds()
		m1, err := usedMemory(ctx, d.rdb)
		if err != nil {
			return 0, err
		}
		if err := d.startRunners(ctx, sp); err != nil {
			return 0, err
		}
		windows, secs, err := drain(ctx, d.rdb, []string{"faas:queue"}, 2*time.Second)
		if err != nil {
			return 0, err
		}
		time.Sleep(time.Second) // the last completions' done messages
		m2, err := usedMemory(ctx, d.rdb)
		if err != nil {
			return 0, err
		}
		if q != nil {
			q.Tasks, q.EnqueueSeconds, q.EnqueueRate = n, enq, float64(n)/enq
			q.BytesPerQueued, q.DrainSeconds, q.Windows = (m1-m0)/float64(n), secs, windows
		}
		return (m2 - m0) / float64(n), nil
	}
	q := &QueueDepth{}
	var err error
	if q.BytesPerFinished, err = run(cfg.QueueTasks, nil, q); err != nil {
		return nil, err
	}
	if cfg.NoTTLTasks > 0 {
		q.NoTTLTasks = cfg.NoTTLTasks
		if q.BytesNoTTL, err = run(cfg.NoTTLTasks, []string{"--result-ttl", "0"}, nil); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func tenantPoint(ctx context.Context, cfg StudyConfig, tenants, tasks int) (TenantPoint, error) {
	noop, _ := KindByName("noop")
	p := TenantPoint{Tenants: tenants}
	dir, err := os.MkdirTemp("", "faas-scale-")
	if err != nil {
		return p, err
	}
	defer os.RemoveAll(dir)
	tokens := make([]string, tenants)
	var b strings.Builder
	for i := range tokens {
		tokens[i] = uuid.NewString()
		fmt.Fprintf(&b, "tenant-%04d:%s\n", i, tokens[i])
	}
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return p, err
	}
	// No quotas: the point is the claims, not the limits.
	sp := spec{mode: "local", sandboxes: 2, workers: 1, runnersLater: true,
		apiArgs: []string{"--tokens-file", file, "--rate", "0", "--max-queued", "0"}}
	d, err := startSpec(ctx, cfg, sp)
	if err != nil {
		return p, err
	}
	defer d.stop()
	per := max(tasks/tenants, 1)
	p.Tasks = per * tenants
	var all []string
	for i, tok := range tokens {
		c := newClient(d.url, tok)
		fid, err := c.register(ctx, noop)
		if err != nil {
			return p, err
		}
		ids, err := enqueue(ctx, c, fid, noop, per, 1000, 1)
		if err != nil {
			return p, fmt.Errorf("tenant %d: %w", i, err)
		}
		all = append(all, ids...)
	}
	calls0, usec0, err := scriptStats(ctx, d.rdb)
	if err != nil {
		return p, err
	}
	cpu0 := d.cpuSeconds()["redis"]
	d.token = tokens[0]
	if err := d.startRunners(ctx, sp); err != nil {
		return p, err
	}
	queues := make([]string, tenants)
	for i := range queues {
		queues[i] = fmt.Sprintf("faas:queue:tenant-%04d", i)
	}
	_, secs, err := drain(ctx, d.rdb, queues, 500*time.Millisecond)
	if err != nil {
		return p, err
	}
	calls1, usec1, err := scriptStats(ctx, d.rdb)
	if err != nil {
		return p, err
	}
	p.TasksPerSec = float64(p.Tasks) / secs
	if calls1 > calls0 {
		p.ScriptUSCall = (usec1 - usec0) / (calls1 - calls0)
	}
	p.RedisUSTask = (d.cpuSeconds()["redis"] - cpu0) * 1e6 / float64(p.Tasks)
	p.FirstStartRank, err = firstStartRank(ctx, d.rdb, all, tenants)
	if err != nil {
		return p, err
	}
	warm, cold, err := sandboxStarts(d.url, d.token)
	if warm+cold > 0 {
		p.ColdShare = cold / (warm + cold)
	}
	return p, err
}

// sandboxStarts sums faas_sandbox_starts_total by type from /metrics.
func sandboxStarts(url, token string) (warm, cold float64, err error) {
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "faas_sandbox_starts_total{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.Contains(f[0], `type="warm"`):
			warm += v
		case strings.Contains(f[0], `type="cold"`):
			cold += v
		}
	}
	return warm, cold, nil
}

// firstStartRank reads every task's start and owner and finds the latest
// first start of a tenant, as a position among all starts over tenants.
func firstStartRank(ctx context.Context, rdb redis.UniversalClient, ids []string, tenants int) (float64, error) {
	type start struct {
		at    int64
		owner string
	}
	starts := make([]start, 0, len(ids))
	for i := 0; i < len(ids); i += 500 {
		pipe := rdb.Pipeline()
		var cmds []*redis.SliceCmd
		for _, id := range ids[i:min(i+500, len(ids))] {
			cmds = append(cmds, pipe.HMGet(ctx, id, "started_at", "owner"))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
		for _, c := range cmds {
			v := c.Val()
			at, _ := strconv.ParseInt(str(v[0]), 10, 64)
			starts = append(starts, start{at, str(v[1])})
		}
	}
	sort.SliceStable(starts, func(i, j int) bool { return starts[i].at < starts[j].at })
	seen := map[string]bool{}
	worst := 0
	for i, s := range starts {
		if !seen[s.owner] {
			seen[s.owner] = true
			worst = i + 1
		}
	}
	return float64(worst) / float64(tenants), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func payloadPoint(ctx context.Context, cfg StudyConfig, size int64, progress func(string) Config) (PayloadPoint, error) {
	k := Kind{Name: "echo" + humanBytes(size), Fn: "echo", Args: pickleArgs(make([]byte, size)),
		What: "echo of a " + humanBytes(size) + " bytes argument"}
	minTasks[k.Name] = payloadTasks(size)
	if size >= 1e6 {
		warmups[k.Name] = 5
	}
	d, err := startSpec(ctx, cfg, spec{mode: "local", sandboxes: 2, workers: 1,
		apiArgs: []string{"--max-body", "64MiB"}})
	if err != nil {
		return PayloadPoint{}, err
	}
	defer d.stop()
	pc := cfg
	pc.PerSandbox = 0
	row, err := measure(ctx, pc, d, "local", 2, k, progress(k.Name))
	if err != nil {
		return PayloadPoint{}, err
	}
	return PayloadPoint{Bytes: size, Row: row, MBps: row.Report.Throughput * 2 * float64(size) / 1e6}, nil
}

// payloadTasks is how many tasks a payload point runs: a few seconds' worth.
func payloadTasks(size int64) int {
	switch {
	case size >= 10e6:
		return 30
	case size >= 1e6:
		return 200
	case size >= 100e3:
		return 1000
	}
	return 3000
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dMB", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dKB", n/1e3)
	}
	return fmt.Sprintf("%dB", n)
}
