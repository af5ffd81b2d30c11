package dispatch

// What push and pull mode share: their configuration, the bookkeeping of a
// task handed to a remote worker, and the completer that records results
// through the lease check off the socket loops.

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
)

// RemoteConfig configures push and pull mode.
type RemoteConfig struct {
	Config
	// Listen is where workers connect: tcp://host:port (host may be *).
	Listen string
	// Heartbeat is the interval of heartbeats in push mode (both ways) and
	// the longest an idle pull worker is told to wait before asking again.
	// Default 1s.
	Heartbeat time.Duration
	// Misses is how many heartbeat intervals a push worker may stay silent
	// before it is declared dead. Default 3.
	Misses int
	// Limits are the task limits; Limits.Timeout is sent with every task
	// (a worker applies the smaller of it and its own) and, plus Grace, is
	// the task's deadline. MaxMessage defaults from them.
	Limits runtime.Limits
	// Grace is added to the task timeout to make the deadline after which
	// a task whose result has not arrived is requeued. Default 5s.
	Grace time.Duration
	// Wire configures the socket (message size limit, timeouts).
	Wire WireOptions
	// Bound, if set, is called with the address the socket listens on.
	Bound func(net.Addr)
	// Secret is the worker secret (see ParseSecret): workers must prove
	// they hold it, and the dispatcher proves it to them. Empty: any
	// worker that reaches Listen is admitted (see wire.go).
	Secret []byte
}

func (c *RemoteConfig) defaults() error {
	if err := c.Config.defaults(); err != nil {
		return err
	}
	if c.Listen == "" {
		return fmt.Errorf("dispatch: no listen address")
	}
	if err := CheckURL(c.Listen); err != nil {
		return fmt.Errorf("dispatch: listen address %w", err)
	}
	if err := CheckSecret(c.Secret); err != nil {
		return fmt.Errorf("dispatch: %w", err)
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = time.Second
	}
	if c.Misses <= 0 {
		c.Misses = 3
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.Wire.MaxMessage <= 0 {
		c.Wire.MaxMessage = DefaultMaxMessage(c.Limits)
	}
	if c.Wire.Logger == nil {
		c.Wire.Logger = c.Logger
	}
	if c.Wire.WriteTimeout <= 0 {
		// A peer that takes no data for this long is as good as dead.
		c.Wire.WriteTimeout = time.Duration(c.Misses) * c.Heartbeat
	}
	c.Wire = c.Wire.withDefaults()
	return nil
}

// logAdmission says at start-up how workers are admitted, and warns when
// anyone on the network may join.
func (c *RemoteConfig) logAdmission(log *slog.Logger, addr net.Addr) {
	switch {
	case len(c.Secret) > 0:
		log.Info("workers must prove they hold the worker secret")
	case !isLoopback(addr):
		log.Warn("no worker secret: any host that reaches this port can join as a worker, take tasks and post results; "+
			"set --worker-secret-file or FAAS_WORKER_SECRET on the dispatcher and its workers", "listen", fmt.Sprint(addr))
	}
}

// deadline is how long a task may be out with a worker.
func (c *RemoteConfig) deadline() time.Duration { return c.Limits.Timeout + c.Grace }

// NewID16 returns a random identifier.
func NewID16() ID16 {
	var id ID16
	if _, err := rand.Read(id[:]); err != nil {
		panic(err)
	}
	return id
}

// sessKey identifies one worker process (its name and the random session
// it drew at start) and, in pull mode, one of its lanes.
type sessKey struct {
	name    string
	session ID16
	lane    int
}

// owner is the name a worker's leases are recorded under in the store: the
// worker's name and a short session tag, so that two processes that share a
// name never renew each other's leases. All lanes of a process share it.
func (k sessKey) owner() string { return k.name + "/" + k.session.String() }

// outTask is a task a worker holds, as the dispatcher sees it.
type outTask struct {
	claim    store.Claim // payloads dropped once sent
	deadline time.Time
	adopting bool // reported by the worker, lease not confirmed yet
}

func (t *outTask) ref() Ref { return Ref{ID: t.claim.TaskID, Fence: t.claim.Fence} }

// wireTask makes the message for a claim, or the failure to record at once
// if its payloads are not base64 or do not fit in a message the worker
// takes (maxMsg; 0: unknown).
func wireTask(cl store.Claim, timeout time.Duration, maxMsg int) (WireTask, *runtime.Result) {
	t, bad := Task(cl)
	if bad != nil {
		return WireTask{}, bad
	}
	if size := len(t.FnPayload) + len(t.ArgsPayload) + len(cl.TaskID) + 1024; maxMsg > 0 && size > maxMsg {
		msg := fmt.Sprintf("the function and arguments (%d bytes) do not fit in a %d-byte message to the worker",
			len(t.FnPayload)+len(t.ArgsPayload), maxMsg)
		return WireTask{}, failure(runtime.KindPayloadTooLarge, msg)
	}
	return WireTask{ID: cl.TaskID, Fence: cl.Fence, Attempt: cl.Attempt, Isolation: t.Isolation,
		FnHash: t.FnHash, Timeout: timeout, Fn: t.FnPayload, Args: t.ArgsPayload}, nil
}

func strip(cl store.Claim) store.Claim {
	cl.FnPayload, cl.ParamPayload = "", ""
	return cl
}

// ---- completer ----

type completeJob struct {
	key sessKey
	res WireResult
}

// completer records results with Core.Complete on a few goroutines, so that
// a slow or absent Redis never blocks a socket loop. A result that is
// already being recorded is not queued twice. done is called with each
// result once the store has decided (recorded or rejected); not when the
// dispatcher stops before that (the worker sends it again to the next one).
type completer struct {
	core *Core
	ctx  context.Context
	done func(key sessKey, a Ack)

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []completeJob
	inflight map[Ref]bool
	closed   bool
	wg       sync.WaitGroup
}

func newCompleter(ctx context.Context, core *Core, workers int, done func(sessKey, Ack)) *completer {
	c := &completer{core: core, ctx: ctx, done: done, inflight: map[Ref]bool{}}
	c.cond = sync.NewCond(&c.mu)
	for range workers {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

func (c *completer) submit(key sessKey, r WireResult) {
	ref := Ref{ID: r.ID, Fence: r.Fence}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.inflight[ref] {
		return
	}
	c.inflight[ref] = true
	c.queue = append(c.queue, completeJob{key, r})
	c.cond.Signal()
}

// pending is the number of results queued or being recorded.
func (c *completer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight)
}

func (c *completer) loop() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		j := c.queue[0]
		c.queue[0] = completeJob{}
		c.queue = c.queue[1:]
		c.mu.Unlock()

		ok := c.core.Complete(c.ctx, store.Claim{TaskID: j.res.ID, Fence: j.res.Fence}, j.res.Result)
		decided := ok || c.ctx.Err() == nil
		c.mu.Lock()
		delete(c.inflight, Ref{ID: j.res.ID, Fence: j.res.Fence})
		c.mu.Unlock()
		if decided {
			c.done(j.key, Ack{ID: j.res.ID, Fence: j.res.Fence, Recorded: ok})
		}
	}
}

// close stops taking results and waits for those queued (bounded by the
// completer's context).
func (c *completer) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

// ---- adoption ----

// adopt confirms with the store that owner still holds claims a worker
// reports, and returns those it does not.
func adopt(ctx context.Context, core *Core, owner string, refs []Ref) (lost map[string]bool, err error) {
	fences := make(map[string]int64, len(refs))
	for _, r := range refs {
		fences[r.ID] = r.Fence
	}
	ids, err := core.Renew(ctx, owner, fences)
	if err != nil {
		return nil, err
	}
	lost = make(map[string]bool, len(ids))
	for _, id := range ids {
		lost[id] = true
	}
	return lost, nil
}

// nodeView is what a push or pull dispatcher publishes about itself
// (store.Node, for GET /runtime, the metrics and the dashboard): the
// sandboxes of the workers it serves now and how many run a task. Its
// loop sets it; Core's publisher reads it.
type nodeView struct {
	mode   string
	limits runtime.Limits
	v      atomic.Pointer[store.Node]
}

// A worker registers once its sandboxes are up, so the registered slots
// count as ready.
func (n *nodeView) set(sandboxes, busy int) {
	n.v.Store(&store.Node{Role: "dispatcher", Mode: n.mode, Sandboxes: sandboxes, Busy: busy,
		Isolation: runtime.Warm, Limits: n.limits,
		Stats: runtime.PoolStats{Size: sandboxes, Ready: sandboxes, Busy: busy}})
}

func (n *nodeView) describe() store.Node {
	if p := n.v.Load(); p != nil {
		return *p
	}
	return store.Node{Role: "dispatcher", Mode: n.mode, Isolation: runtime.Warm, Limits: n.limits}
}
