// Package worker owns the remote workers of push and pull mode, the
// processes behind `faas push-worker <n> <url>` and `faas pull-worker <n>
// <url>`: each runs tasks it gets from a dispatcher on its own pool of n
// sandboxes (runtime.Pool), sends the results back, and keeps every result
// until the dispatcher acknowledges it.
//
// Push workers (RunPush) connect a DEALER socket, REGISTER with their
// capacity and exchange heartbeats with the dispatcher; pull workers
// (RunPull) ask a REP socket for work with REQ whenever a sandbox is free,
// back off exponentially while there is none, and still ask once per
// heartbeat interval while busy. Both survive the dispatcher going away:
// they notice (a broken connection, missed heartbeats, a request that got
// no reply), make a new socket and reconnect with back-off, and tell the
// dispatcher that answers which tasks they hold (running, or finished with
// the result not yet acknowledged) so it can adopt or cancel them; results
// are sent again after a reconnect and the dispatcher's lease check records
// each task at most once. On SIGINT/SIGTERM (ctx ending) a worker stops
// taking tasks, lets running ones finish for Drain, stops the rest and hands
// them back (RELEASE, not counted as an attempt), waits for its results to
// be acknowledged, and says goodbye.
//
// Admission: every connection (push) or lane socket (pull) starts with
// HELLO and the dispatcher's CHALLENGE, and every later message is sealed
// on the channel they open. With a worker secret (Config.Secret) the worker
// proves it holds the secret and requires the dispatcher to prove it too:
// it refuses a dispatcher that has no secret or whose messages do not
// verify, and drops any message that does not verify. Without one it works
// only for a dispatcher without one. Refusals and a wire version mismatch
// are logged as errors, and the worker keeps retrying with back-off.
//
// Bundles (the modules a function was registered with) are fetched from the
// dispatcher by hash when a task needs one, once per bundle, and kept in a
// cache bounded in bytes (Config.BundleCache; see bundle.go).
//
// The wire format and the checked ZeroMQ sockets are the wire package's; the
// dispatcher records results in Redis. A worker links no Redis client: it
// imports wire, bundle, runtime and faastype, never store or dispatch (a
// test checks the import graph).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/ratelog"
	"github.com/wasmfaas/wasmfaas/wire"
)

// Runner runs tasks on sandboxes; *runtime.Pool is one.
type Runner interface {
	Run(ctx context.Context, t faastype.Task) (*faastype.Result, error)
	Size() int
}

// Config configures a push or pull worker.
type Config struct {
	// URL of the dispatcher, tcp://host:port.
	URL string
	// Name identifies the worker in logs and in the store's leases (with a
	// session tag); default host:pid.
	Name string
	// Heartbeat: push mode sends one per interval (or per the dispatcher's
	// interval if shorter); pull mode asks at least once per interval and
	// never backs off longer. Default 1s.
	Heartbeat time.Duration
	// Misses: the dispatcher is considered gone after this many intervals
	// without a word from it (push) or a request without a reply for this
	// many intervals (pull, at least 1s). Default 3.
	Misses int
	// Drain is how long running tasks may finish on shutdown before they
	// are stopped and handed back. Default 5s.
	Drain time.Duration
	// Secret is the worker secret shared with the dispatcher (see
	// wire.ParseSecret); empty for a dispatcher without one.
	Secret []byte
	// Limits of the pool; used to derive the message size limit.
	Limits faastype.Limits
	// Wire configures the socket; MaxMessage defaults from Limits.
	Wire wire.Options
	// BundleCache bounds the bytes of the bundles kept after they were
	// fetched from the dispatcher (shared by all sandboxes); a bundle larger
	// than it is fetched for every task. Default DefaultBundleCache (256 MiB).
	BundleCache int64
	// BundleTimeout is how long a task waits for its bundle from the
	// dispatcher before it is handed back. Default DefaultBundleTimeout
	// (10s).
	BundleTimeout time.Duration
	// Walls is the report of the OS-level walls the pool's sandbox
	// processes put up (runtime.Pool's Stats().Walls), told to the
	// dispatcher so that GET /runtime shows it.
	Walls  string
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if err := wire.CheckURL(c.URL); err != nil {
		return fmt.Errorf("worker: dispatcher address %w", err)
	}
	if err := wire.CheckSecret(c.Secret); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = time.Second
	}
	if c.Misses <= 0 {
		c.Misses = 3
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BundleCache <= 0 {
		c.BundleCache = DefaultBundleCache
	}
	if c.BundleTimeout <= 0 {
		c.BundleTimeout = DefaultBundleTimeout
	}
	if c.Wire.MaxMessage <= 0 {
		c.Wire.MaxMessage = wire.DefaultMaxMessage(c.Limits)
	}
	if c.Wire.Logger == nil {
		c.Wire.Logger = c.Logger
	}
	if c.Wire.WriteTimeout <= 0 {
		c.Wire.WriteTimeout = max(time.Duration(c.Misses)*c.Heartbeat, time.Second)
	}
	return nil
}

// ---- tasks ----

type running struct {
	ref     wire.Ref
	cancel  context.CancelFunc
	started time.Time
	// why it was stopped: "" (it was not), "cancel" (the dispatcher said
	// so: drop it) or "release" (shutdown: hand it back)
	stopped string
}

type finished struct {
	ref     wire.Ref
	res     *faastype.Result
	stopped string
}

type result struct {
	r    wire.Result
	sent int // connection generation it was last sent on; 0 = never
}

// tasks is what a worker holds: running tasks and results waiting for an
// acknowledgement. Only the worker's loop touches it, except that task
// goroutines post to done and ask for bundles on fetches (which the loop
// serves).
type tasks struct {
	pool    Runner
	log     *slog.Logger
	maxMsg  int
	running map[string]*running
	unacked map[string]*result
	done    chan finished
	bundles *bundles
	fetches chan *fetchReq
	wg      sync.WaitGroup
}

func newTasks(pool Runner, log *slog.Logger, maxMsg int, b *bundles) *tasks {
	return &tasks{pool: pool, log: log, maxMsg: maxMsg, running: map[string]*running{},
		unacked: map[string]*result{}, done: make(chan finished, pool.Size()+16),
		bundles: b, fetches: make(chan *fetchReq, pool.Size()+16)}
}

func (ts *tasks) free() int { return max(0, ts.pool.Size()-len(ts.running)) }

// start runs t in the background; its outcome arrives on done.
func (ts *tasks) start(t wire.Task) {
	ref := wire.Ref{ID: t.ID, Fence: t.Fence}
	if old := ts.running[t.ID]; old != nil {
		if old.ref.Fence == t.Fence {
			return // a duplicate
		}
		// A newer claim of a task we still run: the old claim is stale.
		old.stopped = "cancel"
		old.cancel()
	}
	delete(ts.unacked, t.ID)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{ref: ref, cancel: cancel, started: time.Now()}
	ts.running[t.ID] = r
	ts.log.Debug("task started", "task", t.ID, "fence", t.Fence, "attempt", t.Attempt)
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		defer cancel()
		res, err := ts.run(ctx, t)
		f := finished{ref: ref, res: res}
		if err != nil || ctx.Err() != nil {
			f.res = nil // stopped, or no bundle: not an outcome of the task
			if err != nil && ctx.Err() == nil && err != errStoppedBeforeRun {
				ts.log.Error("running a task failed", "task", t.ID, "err", err)
			}
		}
		ts.done <- f
	}()
}

// finish takes a finished task off the running set; it returns the result
// to send, if any, and whether the task must be handed back.
func (ts *tasks) finish(f finished) (res *result, release bool) {
	r := ts.running[f.ref.ID]
	if r == nil || r.ref.Fence != f.ref.Fence {
		return nil, false // replaced by a newer claim
	}
	delete(ts.running, f.ref.ID)
	switch {
	case r.stopped == "cancel":
		return nil, false
	case f.res == nil:
		return nil, true // stopped by shutdown, or the pool is gone
	}
	wr := wire.Result{ID: f.ref.ID, Fence: f.ref.Fence, Result: f.res}
	res = &result{r: wr}
	ts.unacked[f.ref.ID] = res
	return res, false
}

// cancel stops a task the dispatcher no longer wants (its lease is gone) and
// forgets its result if it already finished.
func (ts *tasks) cancel(ref wire.Ref) {
	if r := ts.running[ref.ID]; r != nil && r.ref.Fence == ref.Fence && r.stopped == "" {
		ts.log.Warn("stopping a task: the dispatcher took it back", "task", ref.ID, "fence", ref.Fence)
		r.stopped = "cancel"
		r.cancel()
	}
	if u := ts.unacked[ref.ID]; u != nil && u.r.Fence == ref.Fence {
		ts.log.Warn("dropped a result: the dispatcher took the task back", "task", ref.ID, "fence", ref.Fence)
		delete(ts.unacked, ref.ID)
	}
}

func (ts *tasks) ack(a wire.Ack) {
	if u := ts.unacked[a.ID]; u != nil && u.r.Fence == a.Fence {
		delete(ts.unacked, a.ID)
		if !a.Recorded {
			ts.log.Warn("the dispatcher rejected a result: the task was given to another worker meanwhile", "task", a.ID, "fence", a.Fence)
		}
	}
}

// stopAll stops every running task for a shutdown; they are handed back as
// they end.
func (ts *tasks) stopAll() {
	for _, r := range ts.running {
		if r.stopped == "" {
			r.stopped = "release"
			r.cancel()
		}
	}
}

// held lists running tasks and unacknowledged results.
func (ts *tasks) held() []wire.Held {
	now := time.Now()
	out := make([]wire.Held, 0, len(ts.running)+len(ts.unacked))
	for _, r := range ts.running {
		if r.stopped == "" {
			out = append(out, wire.Held{ID: r.ref.ID, Fence: r.ref.Fence, Elapsed: now.Sub(r.started)})
		}
	}
	for _, u := range ts.unacked {
		out = append(out, wire.Held{ID: u.r.ID, Fence: u.r.Fence, Done: true})
	}
	return out
}

// limit lowers the message size limit to what the dispatcher says it takes.
func (ts *tasks) limit(dispatcherMax int) {
	if dispatcherMax > 0 && dispatcherMax < ts.maxMsg {
		ts.log.Info("the dispatcher takes smaller messages; results are cut to fit", "max_message", dispatcherMax)
		ts.maxMsg = dispatcherMax
	}
}

// fit makes an unacknowledged result fit the current limit.
func (ts *tasks) fit(u *result) wire.Result {
	u.r.Result = fitResult(u.r.Result, ts.maxMsg)
	return u.r
}

// fitResult makes sure a result fits in one message: output is cut first,
// then the result becomes a RESULT_TOO_LARGE failure.
func fitResult(res *faastype.Result, maxMsg int) *faastype.Result {
	budget := maxMsg - 128<<10
	size := func(r *faastype.Result) int {
		n := len(r.Payload) + len(r.Stdout) + len(r.Stderr)
		if r.Error != nil {
			n += len(r.Error.Message) + len(r.Error.Traceback)
		}
		return n
	}
	if size(res) <= budget {
		return res
	}
	c := *res
	c.Stdout, c.Stderr, c.OutputTruncated = nil, nil, true
	if c.Error != nil {
		e := *c.Error
		if len(e.Traceback) > 64<<10 {
			e.Traceback = e.Traceback[len(e.Traceback)-64<<10:]
		}
		if len(e.Message) > 64<<10 {
			e.Message = e.Message[:64<<10]
		}
		c.Error = &e
	}
	if size(&c) <= budget {
		return &c
	}
	msg := fmt.Sprintf("the result (%d bytes) does not fit in a %d-byte message to the dispatcher", len(res.Payload), maxMsg)
	f := faastype.Failure(faastype.KindResultTooLarge, msg)
	f.Timings = res.Timings
	return f
}

// ---- admission ----

// admissionError is a reason this worker cannot work for the dispatcher it
// reached (a failed proof either way, or another wire version): logged as
// an error, and the worker retries.
type admissionError struct{ msg string }

func (e *admissionError) Error() string { return e.msg }

func admissionErr(format string, args ...any) error {
	return &admissionError{fmt.Sprintf(format, args...)}
}

// errRefusedDispatcher: the dispatcher's first sealed answer did not verify.
var errRefusedDispatcher = &admissionError{"refusing the dispatcher: its answer failed authentication, so it does not hold " +
	"this worker's secret (the secrets differ, or it is not the real dispatcher)"}

// checkChallenge says whether the worker goes on with a dispatcher that
// answered its HELLO with m. The dispatcher's "secured" is a hint (the
// proof comes with its first sealed answer), used for clear messages.
func checkChallenge(secret []byte, m *wire.Message) error {
	switch {
	case len(secret) > 0 && !m.Secured:
		return admissionErr("refusing the dispatcher: it has no worker secret and this worker has one " +
			"(give the dispatcher the same secret; or it is not the real dispatcher)")
	case len(secret) == 0 && m.Secured:
		return admissionErr("the dispatcher requires a worker secret and this worker has none: " +
			"set --worker-secret-file or FAAS_WORKER_SECRET")
	}
	return nil
}

// refusal is the error for an ERROR the dispatcher answered with before
// this worker was admitted.
func refusal(m *wire.Message) error {
	switch m.Code {
	case wire.ErrCodeUnauthorized:
		return admissionErr("the dispatcher refused this worker: %s", m.Text)
	case wire.ErrCodeVersion:
		return admissionErr("the dispatcher refused this worker's wire version: %s", m.Text)
	}
	return fmt.Errorf("the dispatcher refused this worker: %s", m.Text)
}

// decodeFrame decodes a frame from the dispatcher; a frame of another wire
// version is an admissionError.
func decodeFrame(b []byte) (*wire.Message, error) {
	m, err := wire.Decode(b)
	if errors.Is(err, wire.ErrWireVersion) {
		return nil, admissionErr("the dispatcher speaks wire version %d and this worker version %d: run the same faas release on both",
			wire.FrameVersion(b), wire.WireVersion)
	}
	return m, err
}

// errLog logs connection failures: admission failures as errors, at most
// one a minute per distinct message, others as warnings.
type errLog struct {
	log *slog.Logger
	rl  *ratelog.Logger
}

func newErrLog(log *slog.Logger) *errLog {
	return &errLog{log: log, rl: ratelog.New(log, time.Minute)}
}

func (l *errLog) report(err error) {
	var ae *admissionError
	if !errors.As(err, &ae) {
		l.log.Warn("lost the dispatcher; reconnecting", "err", err)
		return
	}
	l.rl.Error(ae.msg, "cannot work for this dispatcher; retrying", "err", ae.msg)
}

// ---- helpers ----

var errStopped = errors.New("worker stopped")

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
