// Package bench owns WasmFaaS's performance evaluation: `faas bench`, a
// load generator that drives the real HTTP API the way clients do
// (register, submit open- or closed-loop, long-poll results) and reports
// throughput, latency percentiles and where the time went; and the study
// behind `make bench` (study.go), which starts the services itself and
// measures weak scaling across dispatcher modes and the cost of isolation.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a benchmark task: a function and the arguments every call gets.
type Kind struct {
	Name string
	Fn   string // key of fnPayloads
	Args []byte // pickled (args, kwargs)
	What string
}

// Kinds returns the task kinds the study uses. They are made on first use,
// not at start-up: every faas process links this package (a sandbox
// process too), and arg1mb's argument is a megabyte it would otherwise
// hold for life.
var Kinds = sync.OnceValue(func() []Kind {
	return []Kind{
		{"noop", "noop", pickleArgs(), "a function that returns None"},
		{"fib20", "fib", pickleArgs(int64(20)), "recursive fib(20), CPU-bound (~21,000 calls)"},
		{"sleep100ms", "nap", pickleArgs(0.1), "time.sleep(0.1): waiting, not computing"},
		{"arg1mb", "size", pickleArgs(bytes.Repeat([]byte("x"), 1<<20)), "len() of a 1 MB bytes argument"},
	}
})

// KindByName finds a kind.
func KindByName(name string) (Kind, error) {
	var names []string
	for _, k := range Kinds() {
		if k.Name == name {
			return k, nil
		}
		names = append(names, k.Name)
	}
	return Kind{}, fmt.Errorf("unknown task kind %q (one of %s)", name, strings.Join(names, ", "))
}

// pickleArgs writes the pickle of ((args...), {}) for int64, float64,
// string and []byte arguments, as pickle.dumps(..., protocol=4) would
// (without framing).
func pickleArgs(args ...any) []byte {
	b := []byte{0x80, 4, '('} // PROTO 4, MARK
	for _, a := range args {
		switch v := a.(type) {
		case int64:
			b = append(b, 'J') // BININT
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
		case float64:
			b = append(b, 'G') // BINFLOAT, big endian
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		case string:
			b = append(b, 'X') // BINUNICODE
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case []byte:
			b = append(b, 'B') // BINBYTES
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("bench: cannot pickle %T", a))
		}
	}
	return append(b, 't', '}', 0x86, '.') // TUPLE, EMPTY_DICT, TUPLE2, STOP
}

// Config is one load run.
type Config struct {
	URL         string // API base URL
	Kind        Kind
	Tasks       int           // measured tasks
	Warmup      int           // tasks run and discarded first (warm sandboxes, connections)
	Concurrency int           // closed loop: tasks in flight (default 8)
	Rate        float64       // open loop: submissions per second; 0 means closed loop
	Wait        time.Duration // long-poll per request (default 10s)
	Timeout     time.Duration // give up on a task after this long (default 5m)
	// Progress receives progress output; Terminal redraws one line.
	Progress io.Writer
	Terminal bool
	Client   *http.Client
}

// Stats summarise a sample in milliseconds.
type Stats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func summarize(ms []float64) Stats {
	if len(ms) == 0 {
		return Stats{}
	}
	sort.Float64s(ms)
	var sum float64
	for _, v := range ms {
		sum += v
	}
	q := func(p float64) float64 { return ms[int(math.Ceil(p*float64(len(ms))))-1] }
	return Stats{N: len(ms), Mean: sum / float64(len(ms)), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms[len(ms)-1]}
}

// Split is the mean per-task time the server reports, in milliseconds.
type Split struct {
	SandboxWait float64 `json:"sandbox_wait_ms"` // waiting for a free sandbox in the dispatcher or worker
	Boot        float64 `json:"boot_ms"`         // restoring an interpreter
	Deserialize float64 `json:"deserialize_ms"`
	Run         float64 `json:"run_ms"`
	Serialize   float64 `json:"serialize_ms"`
	Sandbox     float64 `json:"sandbox_total_ms"` // the whole call into the sandbox
}

// Report is the outcome of a run.
type Report struct {
	URL         string         `json:"url"`
	Kind        string         `json:"kind"`
	Loop        string         `json:"loop"` // "closed" or "open"
	Concurrency int            `json:"concurrency,omitempty"`
	Rate        float64        `json:"rate,omitempty"`
	Tasks       int            `json:"tasks"`
	Completed   int            `json:"completed"`
	Failed      int            `json:"failed"`
	Errors      map[string]int `json:"errors,omitempty"`
	Seconds     float64        `json:"seconds"`     // first submission to last final result
	SubmitRate  float64        `json:"submit_rate"` // submissions per second
	Throughput  float64        `json:"throughput"`  // final results per second
	Latency     Stats          `json:"latency"`     // submission to final result
	Submit      Stats          `json:"submit"`      // the POST /execute_function call alone
	Split       Split          `json:"split"`
}

type taskResult struct {
	ok       bool
	errKind  string
	submitMS float64
	totalMS  float64
	timings  *serverTimings
	end      time.Time
}

type serverTimings struct {
	Queue       float64 `json:"queue"`
	Boot        float64 `json:"boot"`
	Deserialize float64 `json:"deserialize"`
	Run         float64 `json:"run"`
	Serialize   float64 `json:"serialize"`
	Total       float64 `json:"total"`
}

// Run registers the kind's function and runs the load.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Tasks <= 0 {
		return nil, errors.New("bench: no tasks to run")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	}
	c := &client{url: strings.TrimRight(cfg.URL, "/"), http: cfg.Client, wait: cfg.Wait}
	fid, err := c.register(ctx, cfg.Kind)
	if err != nil {
		return nil, err
	}
	args := base64.StdEncoding.EncodeToString(cfg.Kind.Args)
	if cfg.Warmup > 0 {
		w := cfg
		w.Tasks, w.Progress = cfg.Warmup, nil
		if _, err := load(ctx, c, w, fid, args); err != nil {
			return nil, fmt.Errorf("bench: warm-up: %w", err)
		}
	}
	return load(ctx, c, cfg, fid, args)
}

func load(ctx context.Context, c *client, cfg Config, fid, args string) (*Report, error) {
	results := make([]taskResult, cfg.Tasks)
	var done atomic.Int64
	stopProgress := progress(cfg, &done)
	defer stopProgress()
	start := time.Now()
	one := func(i int) {
		results[i] = c.task(ctx, fid, args, cfg.Timeout)
		done.Add(1)
	}
	var wg sync.WaitGroup
	var submitEnd time.Time
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		next := start
		for i := 0; i < cfg.Tasks && ctx.Err() == nil; i++ {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			wg.Add(1)
			go func(i int) { defer wg.Done(); one(i) }(i)
		}
		submitEnd = time.Now()
	} else {
		var next atomic.Int64
		for w := 0; w < cfg.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1)) - 1
					if i >= cfg.Tasks {
						return
					}
					one(i)
				}
			}()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep := &Report{URL: c.url, Kind: cfg.Kind.Name, Tasks: cfg.Tasks, Errors: map[string]int{}}
	if cfg.Rate > 0 {
		rep.Loop, rep.Rate = "open", cfg.Rate
	} else {
		rep.Loop, rep.Concurrency = "closed", cfg.Concurrency
	}
	var lat, sub []float64
	var split Split
	var last time.Time
	for _, r := range results {
		if r.end.After(last) {
			last = r.end
		}
		sub = append(sub, r.submitMS)
		if !r.ok {
			rep.Failed++
			rep.Errors[r.errKind]++
			continue
		}
		rep.Completed++
		lat = append(lat, r.totalMS)
		if t := r.timings; t != nil {
			split.SandboxWait += t.Queue * 1000
			split.Boot += t.Boot * 1000
			split.Deserialize += t.Deserialize * 1000
			split.Run += t.Run * 1000
			split.Serialize += t.Serialize * 1000
			split.Sandbox += t.Total * 1000
		}
	}
	if n := float64(rep.Completed); n > 0 {
		split = Split{split.SandboxWait / n, split.Boot / n, split.Deserialize / n, split.Run / n, split.Serialize / n, split.Sandbox / n}
	}
	rep.Split = split
	rep.Seconds = last.Sub(start).Seconds()
	if submitEnd.IsZero() {
		submitEnd = last
	}
	if s := submitEnd.Sub(start).Seconds(); s > 0 {
		rep.SubmitRate = float64(cfg.Tasks) / s
	}
	if rep.Seconds > 0 {
		rep.Throughput = float64(rep.Completed) / rep.Seconds
	}
	rep.Latency, rep.Submit = summarize(lat), summarize(sub)
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	return rep, nil
}

// progress draws a bar on a terminal, or a line every few seconds.
func progress(cfg Config, done *atomic.Int64) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	draw := func(final bool) {
		n := done.Load()
		rate := float64(n) / max(time.Since(start).Seconds(), 1e-9)
		if cfg.Terminal {
			const width = 30
			fill := int(float64(width) * float64(n) / float64(cfg.Tasks))
			fmt.Fprintf(cfg.Progress, "\r%-10s [%s%s] %d/%d  %.0f tasks/s ", cfg.Kind.Name,
				strings.Repeat("#", fill), strings.Repeat(".", width-fill), n, cfg.Tasks, rate)
			if final {
				fmt.Fprintln(cfg.Progress)
			}
		} else {
			fmt.Fprintf(cfg.Progress, "%s: %d/%d tasks final, %.0f tasks/s\n", cfg.Kind.Name, n, cfg.Tasks, rate)
		}
	}
	every := 2 * time.Second
	if cfg.Terminal {
		every = 200 * time.Millisecond
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	return func() { close(stop); <-finished }
}

// client speaks the course protocol.
type client struct {
	url   string
	http  *http.Client
	wait  time.Duration
	token string // API token ("" none)
}

func (c *client) post(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

func (c *client) do(req *http.Request, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

func (c *client) register(ctx context.Context, k Kind) (string, error) {
	var out struct {
		FunctionID string `json:"function_id"`
	}
	if err := c.post(ctx, "/register_function", map[string]string{"name": "bench-" + k.Name, "payload": fnPayloads[k.Fn]}, &out); err != nil {
		return "", fmt.Errorf("bench: register %s: %w", k.Name, err)
	}
	return out.FunctionID, nil
}

// task submits one call and long-polls its result.
func (c *client) task(ctx context.Context, fid, args string, timeout time.Duration) taskResult {
	start := time.Now()
	var sub struct {
		TaskID string `json:"task_id"`
	}
	err := c.post(ctx, "/execute_function", map[string]string{"function_id": fid, "payload": args}, &sub)
	submitted := time.Now()
	res := taskResult{submitMS: ms(submitted.Sub(start))}
	if err != nil {
		res.errKind, res.end = "SUBMIT_ERROR", time.Now()
		return res
	}
	deadline := start.Add(timeout)
	waitArg := fmt.Sprintf("?wait=%gs", c.wait.Seconds())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/result/"+sub.TaskID+waitArg, nil)
		var body struct {
			Status  string                 `json:"status"`
			Error   *struct{ Kind string } `json:"error"`
			Timings *serverTimings         `json:"timings"`
		}
		if err := c.do(req, &body); err != nil {
			res.errKind, res.end = "RESULT_ERROR", time.Now()
			return res
		}
		switch body.Status {
		case "COMPLETED":
			res.ok, res.timings = true, body.Timings
		case "FAILED":
			res.errKind = "FAILED"
			if body.Error != nil {
				res.errKind = body.Error.Kind
			}
		default:
			continue
		}
		res.end = time.Now()
		res.totalMS = ms(res.end.Sub(start))
		return res
	}
	res.errKind, res.end = "CLIENT_TIMEOUT", time.Now()
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
