package dispatch

// What push and pull mode share: their configuration, the bookkeeping of a
// task handed to a remote worker, the completer that records results
// through the lease check off the socket loops, and the checks and answers
// of a worker's FETCH of a task's bundle.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/ratelog"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/wire"
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
	Limits faastype.Limits
	// Grace is added to the task timeout to make the deadline after which
	// a task whose result has not arrived is requeued. Default 5s.
	Grace time.Duration
	// Wire configures the socket (message size limit, timeouts).
	Wire wire.Options
	// Bound, if set, is called with the address the socket listens on.
	Bound func(net.Addr)
	// Secret is the worker secret (see ParseSecret): workers must prove
	// they hold it, and the dispatcher proves it to them. Empty: any
	// worker that reaches Listen is admitted (see wire/message.go).
	Secret []byte
}

func (c *RemoteConfig) defaults() error {
	if err := c.Config.defaults(); err != nil {
		return err
	}
	if c.Listen == "" {
		return fmt.Errorf("dispatch: no listen address")
	}
	if err := wire.CheckURL(c.Listen); err != nil {
		return fmt.Errorf("dispatch: listen address %w", err)
	}
	if err := wire.CheckSecret(c.Secret); err != nil {
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
		c.Wire.MaxMessage = wire.DefaultMaxMessage(c.Limits)
	}
	if c.Wire.Logger == nil {
		c.Wire.Logger = c.Logger
	}
	if c.Wire.WriteTimeout <= 0 {
		// A peer that takes no data for this long is as good as dead.
		c.Wire.WriteTimeout = time.Duration(c.Misses) * c.Heartbeat
	}
	c.Wire = c.Wire.WithDefaults()
	return nil
}

// remote is what push and pull mode share once started: the dispatcher's
// start-up (start), the listening socket, the completer, and this
// incarnation's id.
type remote struct {
	*started
	cfg  RemoteConfig
	rlog *ratelog.Logger
	sock zmq4.Socket
	inc  wire.ID16
	comp *completer
	view *nodeView
}

// startRemote starts the core, listens on cfg.Listen with listen and
// starts the completer, whose recorded results go to recorded.
func startRemote(cfg RemoteConfig, mode string,
	listen func(context.Context, string, wire.Options) (zmq4.Socket, error), recorded func(sessKey, wire.Ack)) (*remote, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	view := &nodeView{mode: mode, limits: cfg.Limits}
	if cfg.Describe == nil {
		cfg.Describe = view.describe
	}
	s, err := start(cfg.Config, mode)
	if err != nil {
		return nil, err
	}
	r := &remote{started: s, cfg: cfg, rlog: ratelog.New(s.log, 10*time.Second), inc: wire.NewID16(), view: view}
	sock, err := listen(s.bgCtx, cfg.Listen, cfg.Wire)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("dispatch: %s: listen on %s: %w", mode, cfg.Listen, err)
	}
	r.sock = sock
	if cfg.Bound != nil {
		cfg.Bound(sock.Addr())
	}
	switch {
	case len(cfg.Secret) > 0:
		s.log.Info("workers must prove they hold the worker secret")
	case !wire.IsLoopback(sock.Addr()):
		s.log.Warn("no worker secret: any host that reaches this port can join as a worker, take tasks and post results; "+
			"set --worker-secret-file or FAAS_WORKER_SECRET on the dispatcher and its workers", "listen", fmt.Sprint(sock.Addr()))
	}
	r.comp = newCompleter(s.bgCtx, s.core, 8, recorded)
	return r, nil
}

// drain waits, for up to cfg.Drain, until no task is out with a worker and
// every result received is recorded.
func (r *remote) drain(running func() int) {
	r.log.Info("dispatcher stopping", "running", running(), "drain", r.cfg.Drain)
	end := time.Now().Add(r.cfg.Drain)
	for running() > 0 || r.comp.pending() > 0 {
		if time.Now().After(end) {
			r.log.Warn("stopping the tasks still running; they go back to the queue", "running", running())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// release gives claims back to the queue, not counted, and waits.
func (r *remote) release(claims []store.Claim) {
	var wg sync.WaitGroup
	for _, cl := range claims {
		wg.Add(1)
		go func() { defer wg.Done(); r.core.Release(r.bgCtx, cl) }()
	}
	wg.Wait()
}

// requeue gives the claims of a worker that is gone (or late) back to the
// queue, counted, in the background; failed says what to log if the store
// cannot be reached (the leases then expire instead).
func (r *remote) requeue(claims []store.Claim, failed string) {
	if len(claims) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(r.bgCtx, r.core.Lease())
		defer cancel()
		if err := r.core.Requeue(ctx, claims); err != nil {
			r.rlog.Warn("requeue", failed, "err", err)
		}
	}()
}

// closeCompleter lets the results being recorded finish, for a moment
// (Core.Complete waits for Redis), and stops the completer.
func (r *remote) closeCompleter() {
	done := make(chan struct{})
	go func() { r.comp.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		r.stopBg()
		<-done
	}
}

// deadline is how long a task may be out with a worker.
func (c *RemoteConfig) deadline() time.Duration { return c.Limits.Timeout + c.Grace }

// sessKey identifies one worker process (its name and the random session
// it drew at start) and, in pull mode, one of its lanes.
type sessKey struct {
	name    string
	session wire.ID16
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

func (t *outTask) ref() wire.Ref { return wire.Ref{ID: t.claim.TaskID, Fence: t.claim.Fence} }

// wireTask makes the message for a claim, or the failure to record at once
// if its payloads are not base64 or do not fit in a message the worker
// takes (maxMsg; 0: unknown). The task names its bundle by hash only: the
// worker FETCHes the bytes if it does not hold them.
func wireTask(cl store.Claim, timeout time.Duration, maxMsg int) (wire.Task, *faastype.Result) {
	t, bad := Task(cl)
	if bad != nil {
		return wire.Task{}, bad
	}
	t.BundleData = nil
	if size := len(t.Fn) + len(t.Args) + len(cl.TaskID) + len(cl.FunctionID) + len(t.Bundle) + 1024; maxMsg > 0 && size > maxMsg {
		msg := fmt.Sprintf("the function and arguments (%d bytes) do not fit in a %d-byte message to the worker",
			len(t.Fn)+len(t.Args), maxMsg)
		return wire.Task{}, faastype.Failure(faastype.KindPayloadTooLarge, msg)
	}
	// The dispatcher's task timeout, or the function's own when shorter
	// (the worker applies its own limit on top).
	if t.Timeout <= 0 || (timeout > 0 && timeout < t.Timeout) {
		t.Timeout = timeout
	}
	return wire.Task{Task: t, Fence: cl.Fence, Attempt: cl.Attempt}, nil
}

// strip drops a claim's payloads once they are sent (its Owner and Bundle
// stay: a FETCH is checked against them).
func strip(cl store.Claim) store.Claim {
	cl.FnPayload, cl.ParamPayload = "", ""
	return cl
}

// ---- bundles ----

// fetchRefusal says why a worker may not have bundle hash for ref, given
// t, the task it holds under ref.ID as the dispatcher sees it (nil: none);
// "" if it may.
func fetchRefusal(t *outTask, ref wire.Ref, hash string) string {
	switch {
	case t == nil || t.claim.Fence != ref.Fence:
		return fmt.Sprintf("this worker does not hold task %s with fence %d (as this dispatcher sees it)", ref.ID, ref.Fence)
	case t.adopting:
		return fmt.Sprintf("task %s is being adopted: its claim is not confirmed yet", ref.ID)
	case t.claim.Bundle == "":
		return fmt.Sprintf("task %s has no bundle", ref.ID)
	case t.claim.Bundle != hash:
		return fmt.Sprintf("task %s's bundle is %s, not %s", ref.ID, t.claim.Bundle, hash)
	}
	return ""
}

// bundleReply is the BUNDLE answer to a FETCH (for task ref) of bundle
// hash whose read from the store gave data or err, for a worker that takes
// messages of up to maxMsg bytes (0: not said).
func bundleReply(ref wire.Ref, hash string, data []byte, err error, maxMsg int) *wire.Message {
	m := &wire.Message{Type: wire.MsgBundle, Fetch: ref, Bundle: hash}
	switch {
	case errors.Is(err, ErrNoBundle):
		m.Code, m.Text = wire.BundleMissing, NoBundle(hash).Error.Message
	case err != nil:
		m.Code, m.Text = wire.BundleUnavailable, "reading the bundle from the store failed: "+err.Error()
	case len(data) == 0:
		m.Code, m.Text = wire.BundleMissing, NoBundle(hash).Error.Message
	case maxMsg > 0 && len(data)+len(hash)+4096 > maxMsg:
		m.Code, m.Text = wire.BundleTooLarge, fmt.Sprintf(
			"the function's bundle (%d bytes) does not fit in a %d-byte message to the worker (raise the worker's --max-message)",
			len(data), maxMsg)
	default:
		m.BundleData = data
	}
	return m
}

// ---- completer ----

type completeJob struct {
	key sessKey
	res wire.Result
	// next, when set, is the worker's slot the result freed, reserved for
	// a claim made with the completion (Core.CompleteAndClaimFor).
	next *nextClaim
}

// nextClaim is a claim of one task for a worker's slot, made in the same
// script as a completion; deliver hands the claims (none, if the store
// had none or failed) to the worker and frees the reservation.
type nextClaim struct {
	owner   string
	deliver func(claims []store.Claim)
}

// completer records results with Core.Complete on a few goroutines, so that
// a slow or absent Redis never blocks a socket loop. A result that is
// already being recorded is not queued twice. done is called with each
// result once the store has decided (recorded or rejected); not when the
// dispatcher stops before that (the worker sends it again to the next one).
type completer struct {
	core *Core
	ctx  context.Context
	done func(key sessKey, a wire.Ack)

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []completeJob
	inflight map[wire.Ref]bool
	closed   bool
	wg       sync.WaitGroup
}

func newCompleter(ctx context.Context, core *Core, workers int, done func(sessKey, wire.Ack)) *completer {
	c := &completer{core: core, ctx: ctx, done: done, inflight: map[wire.Ref]bool{}}
	c.cond = sync.NewCond(&c.mu)
	for range workers {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

func (c *completer) submit(key sessKey, r wire.Result) { c.submitJob(completeJob{key: key, res: r}) }

// submitJob queues j; false if it was dropped (closed, or that result is
// being recorded already), and then j.next is not called.
func (c *completer) submitJob(j completeJob) bool {
	ref := wire.Ref{ID: j.res.ID, Fence: j.res.Fence}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.inflight[ref] {
		return false
	}
	c.inflight[ref] = true
	c.queue = append(c.queue, j)
	c.cond.Signal()
	return true
}

// claim marks result ref as being recorded by the caller itself (not
// queued); false if it is already being recorded. release ends that.
func (c *completer) claim(ref wire.Ref) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.inflight[ref] {
		return false
	}
	c.inflight[ref] = true
	return true
}

func (c *completer) release(ref wire.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, ref)
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

		cl := store.Claim{TaskID: j.res.ID, Fence: j.res.Fence}
		var ok bool
		if j.next != nil {
			var claims []store.Claim
			ok, claims = c.core.CompleteAndClaimFor(c.ctx, cl, j.res.Result, j.next.owner, 1)
			j.next.deliver(claims)
		} else {
			ok = c.core.Complete(c.ctx, cl, j.res.Result)
		}
		decided := ok || c.ctx.Err() == nil
		c.mu.Lock()
		delete(c.inflight, wire.Ref{ID: j.res.ID, Fence: j.res.Fence})
		c.mu.Unlock()
		if decided {
			c.done(j.key, wire.Ack{ID: j.res.ID, Fence: j.res.Fence, Recorded: ok})
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
func adopt(ctx context.Context, core *Core, owner string, refs []wire.Ref) (lost map[string]bool, err error) {
	cls := make([]store.Claim, len(refs))
	for i, r := range refs {
		cls[i] = store.Claim{TaskID: r.ID, Fence: r.Fence} // bare: Renew reads the owners
	}
	ids, err := core.Renew(ctx, owner, cls)
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
	limits faastype.Limits
	v      atomic.Pointer[store.Node]
}

// A worker registers once its sandboxes are up, so the registered slots
// count as ready.
// wallsOf is a worker's walls report, or what its silence means.
func wallsOf(report string) string {
	if report == "" {
		return "unreported (a worker older than the walls)"
	}
	return report
}

// walls are the workers' reports of their sandboxes' OS walls, each once.
func (n *nodeView) set(sandboxes, busy int, walls []string) {
	slices.Sort(walls)
	walls = slices.Compact(walls)
	n.v.Store(&store.Node{Role: "dispatcher", Mode: n.mode, Sandboxes: sandboxes, Busy: busy,
		Isolation: faastype.Warm, Limits: n.limits,
		Stats: faastype.PoolStats{Size: sandboxes, Ready: sandboxes, Busy: busy, Walls: strings.Join(walls, " | ")}})
}

func (n *nodeView) describe() store.Node {
	if p := n.v.Load(); p != nil {
		return *p
	}
	return store.Node{Role: "dispatcher", Mode: n.mode, Isolation: faastype.Warm, Limits: n.limits}
}
