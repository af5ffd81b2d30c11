package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

// Config is what every dispatcher mode shares.
type Config struct {
	Store *store.Store
	// Name identifies this dispatcher in leases; default host:pid.
	Name string
	// Lease is how long a claim holds without renewal; leases of running
	// tasks are renewed every Lease/3. Default 10s.
	Lease time.Duration
	// ReapEvery is how often expired leases are collected. Default 1s.
	ReapEvery time.Duration
	// Poll is the longest the dispatcher sleeps without a Tasks
	// notification before it looks at the queue again. Default 1s.
	Poll time.Duration
	// Drain is how long a stopping dispatcher lets running tasks finish
	// before it stops them and gives them back to the queue. Default 5s.
	Drain time.Duration
	// Describe, when set, is published to the store every NodeEvery so the
	// API can show this dispatcher (GET /runtime, metrics, dashboard).
	Describe  func() store.Node
	NodeEvery time.Duration // default 2s
	// BundleCache bounds the bytes of bundles kept in memory after they
	// were read from the store (for local sandboxes and for the workers
	// that fetch them). Default 256 MiB.
	BundleCache int64
	// Webhooks, when set, delivers the completion webhooks of final tasks
	// (any dispatcher's: the store leases each delivery to one deliverer).
	// Nil: this dispatcher delivers none.
	Webhooks *hooks.Deliverer
	Logger   *slog.Logger
}

func (c *Config) defaults() error {
	if c.Store == nil {
		return errors.New("dispatch: no store")
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Lease <= 0 {
		c.Lease = 10 * time.Second
	}
	if c.ReapEvery <= 0 {
		c.ReapEvery = time.Second
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.NodeEvery <= 0 {
		c.NodeEvery = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BundleCache <= 0 {
		c.BundleCache = DefaultBundleCache
	}
	return nil
}

// DefaultBundleCache is Config.BundleCache's default.
const DefaultBundleCache = 256 << 20

// ErrNoBundle is returned by Bundle when the store has no such bundle for
// the task's tenant: the task cannot run.
var ErrNoBundle = errors.New("the function's bundle is not in the store")

// Bundle returns the zip of tenant owner's bundle hash, from memory or
// from the store (read once however many tasks ask at a time). Any other
// error is the store's: the task may run later.
func (c *Core) Bundle(ctx context.Context, owner, hash string) ([]byte, error) {
	return c.bundles.Fetch(ctx, bundleKey(owner, hash), func(ctx context.Context) ([]byte, int64, error) {
		b, err := c.st.GetBundle(ctx, owner, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, fmt.Errorf("bundle %s: %w", hash, ErrNoBundle)
		}
		return b, int64(len(b)), err
	})
}

// CachedBundle returns tenant owner's bundle hash if it is in memory,
// without waiting for the store.
func (c *Core) CachedBundle(owner, hash string) ([]byte, bool) {
	return c.bundles.Get(bundleKey(owner, hash))
}

// bundleKey names tenant owner's bundle hash in the dispatcher's caches
// and reads ("/" is in no tenant name nor hash).
func bundleKey(owner, hash string) string { return owner + "/" + hash }

// NoBundle is the failure of a task whose bundle is gone from the store.
func NoBundle(hash string) *faastype.Result {
	return faastype.Failure(faastype.KindBadPayload, fmt.Sprintf(
		"the function's bundle %s is not in the store (deleted?); register the function again", hash))
}

// Core is the mode-independent part of a dispatcher.
type Core struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
	// wakes counts the signs that work may have come (Tasks notifications,
	// requeues, freed capacity): a claim that takes it first and comes back
	// short waits only if none came since (WaitSince). woken is closed (and
	// replaced) at each Wake, so that every waiter wakes.
	wakes  atomic.Uint64
	wakeMu sync.Mutex
	woken  chan struct{}
	// The latest claim that came back short: the Wakes count taken before
	// it and when it was made (zero: none yet). See NothingNew.
	emptyMu    sync.Mutex
	emptyWakes uint64
	emptyTime  time.Time

	mu   sync.Mutex
	held map[string]*held // task id -> claim being worked on
	// renewNow makes renewLoop renew before its next tick (renewSoon).
	renewNow chan struct{}

	bundles *bundle.Cache[[]byte] // by tenant and hash, read from the store
}

type held struct {
	claim  store.Claim
	owner  string             // the lease holder's name in the store
	cancel context.CancelFunc // called when the lease is lost
}

// NewCore prepares a core; Start runs its background loops.
func NewCore(cfg Config) (*Core, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Core{cfg: cfg, st: cfg.Store, log: cfg.Logger, woken: make(chan struct{}), held: map[string]*held{},
		renewNow: make(chan struct{}, 1), bundles: bundle.NewCache[[]byte](cfg.BundleCache)}, nil
}

// Start recovers expired leases once, then keeps renewing, reaping,
// listening for new tasks and for cancelled ones, promoting due ones and
// (with Config.Webhooks) delivering completion webhooks until ctx ends. It returns
// when the first recovery is done.
func (c *Core) Start(ctx context.Context, wg *sync.WaitGroup) error {
	if err := c.reap(ctx); err != nil {
		return err
	}
	// Subscribed before Start returns, so before the first claim: a task
	// claimed and then cancelled while its cancel subscription was still
	// being set up (one more round trip through Sentinel, to ask for the
	// primary) would run on until its next lease renewal.
	// Every task announced wakes the claim loops, and so does the
	// subscription being established again (announcements may have been
	// lost): on the goroutine that reads the subscription.
	stopTasks := c.st.OnTasks(ctx, func(string) { c.Wake() })
	cancels, stopCancels := c.st.SubscribeCancels(ctx)
	wg.Add(6)
	go func() { defer wg.Done(); c.promoteLoop(ctx) }()
	go func() { defer wg.Done(); c.scheduleLoop(ctx) }()
	go func() { defer wg.Done(); c.renewLoop(ctx) }()
	go func() { defer wg.Done(); c.reapLoop(ctx) }()
	go func() { defer wg.Done(); <-ctx.Done(); stopTasks() }()
	go func() { defer wg.Done(); c.listenCancels(ctx, cancels, stopCancels) }()
	if c.cfg.Describe != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.publishLoop(ctx) }()
	}
	if c.cfg.Webhooks != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.cfg.Webhooks.Run(ctx) }()
	}
	return nil
}

// publishLoop keeps this node's description fresh in the store and removes
// it on the way out.
func (c *Core) publishLoop(ctx context.Context) {
	started := time.Now()
	publish := func() {
		n := c.cfg.Describe()
		if n.Name == "" {
			n.Name = c.cfg.Name
		}
		n.StartedAt = started
		if err := c.st.PutNode(ctx, n); err != nil && ctx.Err() == nil {
			c.log.Warn("publishing this node failed", "err", err)
		}
	}
	publish()
	t := time.NewTicker(c.cfg.NodeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.st.RemoveNode(rctx, c.cfg.Name)
			cancel()
			return
		case <-t.C:
			publish()
		}
	}
}

// Wake says work may have come: every WaitSince of an earlier Wakes
// returns.
func (c *Core) Wake() {
	c.wakeMu.Lock()
	c.wakes.Add(1)
	close(c.woken)
	c.woken = make(chan struct{})
	c.wakeMu.Unlock()
}

// Wakes is the number of Wake calls so far. Take it before a claim: if the
// claim comes back short, WaitSince(ctx, n) returns at once when a task was
// announced while the claim ran, which a wait for the next announcement
// would miss (the task would sit in the queue until the poll interval).
func (c *Core) Wakes() uint64 { return c.wakes.Load() }

// WaitSince sleeps until there has been a Wake after the first n (there may
// have been one already), the poll interval passes or ctx ends. Any number
// of goroutines may wait at once: a Wake wakes them all.
func (c *Core) WaitSince(ctx context.Context, n uint64) {
	c.wakeMu.Lock()
	if c.wakes.Load() != n {
		c.wakeMu.Unlock()
		return
	}
	woken := c.woken
	c.wakeMu.Unlock()
	t := time.NewTimer(c.cfg.Poll)
	defer t.Stop()
	select {
	case <-woken:
	case <-t.C:
	case <-ctx.Done():
	}
}

// listenCancels stops at once the tracked tasks that are cancelled while
// they run: Store.Cancel has already failed them and dropped their leases,
// and publishes their ids on the subscription ids. Without the message
// (subscription down) a renewal finds the lease gone and does the same:
// the next one, or one at once when the subscription comes back (after a
// Sentinel failover, on the new primary), since cancellations published
// while it was down are lost.
func (c *Core) listenCancels(ctx context.Context, ids <-chan string, stop func()) {
	for {
		for id := range ids {
			if id == store.Resubscribed {
				c.log.Info("cancel subscription re-established; renewing the leases at once")
				c.renewSoon()
				continue
			}
			c.mu.Lock()
			h := c.held[id]
			delete(c.held, id)
			c.mu.Unlock()
			if h != nil {
				c.log.Info("task cancelled; stopping it", "task", id, "owner", h.owner)
				if h.cancel != nil {
					h.cancel()
				}
			}
		}
		stop()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		ids, stop = c.st.SubscribeCancels(ctx)
		c.renewSoon()
	}
}

// renewSoon has the renewal loop renew every tracked lease now rather than
// at its next tick; those found lost (cancelled tasks among them) are
// stopped.
func (c *Core) renewSoon() {
	select {
	case c.renewNow <- struct{}{}:
	default:
	}
}

// Claim takes up to n tasks and tracks their leases. cancel is called for a
// task whose lease this dispatcher loses (it must stop working on it).
func (c *Core) Claim(ctx context.Context, n int) ([]store.Claim, error) {
	return c.ClaimFor(ctx, c.cfg.Name, n)
}

// ClaimFor is Claim for a remote worker: the leases are recorded under
// owner (the task's worker field), so that the worker's claims can be told
// apart and renewed under that name, also by a dispatcher that restarted.
// Track the claims with TrackFor and the same owner.
func (c *Core) ClaimFor(ctx context.Context, owner string, n int) ([]store.Claim, error) {
	wakes := c.Wakes()
	claims, err := c.st.Claim(ctx, owner, n, c.cfg.Lease)
	if err != nil {
		return nil, err
	}
	c.claimed(wakes, n, len(claims))
	return claims, nil
}

// claimed notes a claim for n tasks that got got, started when Wakes was
// wakes: a short one says the queue had nothing runnable then.
func (c *Core) claimed(wakes uint64, n, got int) {
	if got >= n || c.st.MaxRunning() > 0 {
		// With a running cap, tasks may be queued behind a tenant at its
		// cap: a lease dropped anywhere can make them runnable unannounced.
		return
	}
	c.emptyMu.Lock()
	defer c.emptyMu.Unlock()
	if c.emptyTime.IsZero() || wakes >= c.emptyWakes {
		c.emptyWakes, c.emptyTime = wakes, time.Now()
	}
}

// NothingNew reports whether the latest claim that came back short started
// after the latest Wake, less than the poll interval ago: then no task was
// announced since the queue was found empty, and a claim now would most
// likely come back empty too (at light load every idle slot tried one for
// each task, a round trip and Redis' costliest script each). The caller
// waits with WaitSince(w) instead, which returns at the next announcement
// or after the poll interval, or answers "none". Tasks made runnable
// unannounced (released ones) are found by the next claim after the poll
// interval, or by the claim a busy slot makes with its completion.
func (c *Core) NothingNew() (w uint64, ok bool) {
	c.emptyMu.Lock()
	defer c.emptyMu.Unlock()
	if c.emptyTime.IsZero() || c.Wakes() != c.emptyWakes || time.Since(c.emptyTime) >= c.cfg.Poll {
		return 0, false
	}
	return c.emptyWakes, true
}

// Track registers a claim whose lease must be renewed while it runs;
// cancel is called if the lease is lost anyway or the task is cancelled
// (DELETE /task/{id}): it must stop the task (kill its sandbox) and not
// report a result (it would be rejected).
func (c *Core) Track(cl store.Claim, cancel context.CancelFunc) {
	c.TrackFor(cl, c.cfg.Name, cancel)
}

// TrackFor is Track for a claim whose lease is held under owner (see
// ClaimFor). Tracking a claim that owner holds in the store but this
// dispatcher did not make (a worker reporting what it runs after the
// dispatcher restarted) adopts it: the next renewal tells whether the lease
// is still owner's, and cancel is called if not.
func (c *Core) TrackFor(cl store.Claim, owner string, cancel context.CancelFunc) {
	c.mu.Lock()
	c.held[cl.TaskID] = &held{claim: cl, owner: owner, cancel: cancel}
	c.mu.Unlock()
}

// Untrack stops renewing a claim without a store operation (its lease then
// expires unless someone else renews it). A claim of the same task under
// another fence is left alone.
func (c *Core) Untrack(cl store.Claim) { c.untrack(cl) }

func (c *Core) untrack(cl store.Claim) {
	c.mu.Lock()
	if h := c.held[cl.TaskID]; h != nil && h.claim.Fence == cl.Fence {
		delete(c.held, cl.TaskID)
	}
	c.mu.Unlock()
}

// Renew checks at once that owner still holds the given claims and extends
// their leases; it returns the task ids owner no longer holds. It is how a
// dispatcher confirms claims a worker reports before tracking them.
func (c *Core) Renew(ctx context.Context, owner string, claims []store.Claim) ([]string, error) {
	refs, err := c.refs(ctx, claims)
	if err != nil {
		return nil, err
	}
	return c.st.Renew(ctx, owner, refs, c.cfg.Lease)
}

// Requeue gives the claims of a worker known to be gone back to the queue
// at once, the attempt counted (or FAILS them with WORKER_LOST after the
// maximum attempts), instead of waiting for their leases to expire, and
// stops tracking them. Claims that moved on are left alone.
func (c *Core) Requeue(ctx context.Context, cls []store.Claim) error {
	if len(cls) == 0 {
		return nil
	}
	refs, err := c.refs(ctx, cls)
	for _, cl := range cls {
		c.untrack(cl)
	}
	if err != nil {
		return err
	}
	requeued, failed, err := c.st.Requeue(ctx, refs)
	if err != nil {
		return err
	}
	if len(requeued) > 0 {
		c.log.Info("requeued the tasks of a lost worker", "count", len(requeued))
		c.Wake()
	}
	if len(failed) > 0 {
		c.log.Warn("tasks failed: their worker was lost on their last attempt", "count", len(failed))
	}
	return nil
}

// Lease is the lease duration claims are made with.
func (c *Core) Lease() time.Duration { return c.cfg.Lease }

// Name is this dispatcher's name.
func (c *Core) Name() string { return c.cfg.Name }

// Logger is the dispatcher's logger.
func (c *Core) Logger() *slog.Logger { return c.log }

// Held is the number of tasks this dispatcher holds leases on.
func (c *Core) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// Complete records a task's outcome through the lease check, retrying while
// Redis is unreachable (until ctx ends or the lease is gone). It reports
// whether the outcome was recorded; false means another attempt owns the
// task now (a late result, rejected by design).
func (c *Core) Complete(ctx context.Context, cl store.Claim, res *faastype.Result) bool {
	defer c.untrack(cl)
	o := c.outcome(cl, res)
	backoff := 50 * time.Millisecond
	for {
		var ok bool
		r, err := c.ref(ctx, cl)
		if err == nil {
			ok, err = c.st.Complete(ctx, r, o)
		}
		if err == nil {
			if !ok {
				c.log.Warn("late result rejected: the task's lease moved on", "task", cl.TaskID, "fence", cl.Fence)
			}
			return ok
		}
		c.log.Error("recording a result failed; retrying", "task", cl.TaskID, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// CompleteAndClaim records a task's outcome, as Complete does, and claims
// up to n more tasks (for the caller to Track) in the same round trip to the
// store. Should that fail, it falls back to Complete's retries and claims
// nothing.
func (c *Core) CompleteAndClaim(ctx context.Context, cl store.Claim, res *faastype.Result, n int) []store.Claim {
	_, next := c.CompleteAndClaimFor(ctx, cl, res, c.cfg.Name, n)
	return next
}

// CompleteAndClaimFor is CompleteAndClaim for a remote worker's slot: the
// claims are leased under owner (see ClaimFor). It reports whether the
// outcome was recorded.
func (c *Core) CompleteAndClaimFor(ctx context.Context, cl store.Claim, res *faastype.Result, owner string, n int) (bool, []store.Claim) {
	if n <= 0 {
		return c.Complete(ctx, cl, res), nil
	}
	ok, next, err := c.CompleteAndClaimOnce(ctx, cl, res, owner, n)
	if err != nil {
		c.log.Warn("recording a result and claiming the next task failed; recording it alone", "task", cl.TaskID, "err", err)
		return c.Complete(ctx, cl, res), nil
	}
	return ok, next
}

// CompleteAndClaimOnce is one attempt of CompleteAndClaimFor: an error
// means nothing was done, and the caller records the outcome another way.
func (c *Core) CompleteAndClaimOnce(ctx context.Context, cl store.Claim, res *faastype.Result, owner string, n int) (bool, []store.Claim, error) {
	wakes := c.Wakes()
	r, err := c.ref(ctx, cl)
	if err != nil {
		return false, nil, err
	}
	ok, next, err := c.st.CompleteAndClaim(ctx, r, c.outcome(cl, res), owner, n, c.cfg.Lease)
	if err != nil && !ok && len(next) == 0 {
		return false, nil, err
	}
	if err == nil {
		c.claimed(wakes, n, len(next))
	}
	c.untrack(cl)
	if err != nil {
		c.log.Error("claiming after a result", "task", cl.TaskID, "err", err)
	}
	if !ok {
		c.log.Warn("late result rejected: the task's lease moved on", "task", cl.TaskID, "fence", cl.Fence)
	}
	return ok, next, nil
}

// Release gives a claimed task back to the queue without it counting as an
// attempt (used when shutting down).
func (c *Core) Release(ctx context.Context, cl store.Claim) {
	defer c.untrack(cl)
	r, err := c.ref(ctx, cl)
	if err == nil {
		err = c.st.Release(ctx, r)
	}
	if err != nil {
		c.log.Error("releasing a task failed; its lease will expire instead", "task", cl.TaskID, "err", err)
	}
}

func (c *Core) renewLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.renewNow:
		}
		// One renewal per lease holder: this dispatcher in local mode, each
		// remote worker in push and pull mode.
		c.mu.Lock()
		byOwner := map[string][]store.Claim{}
		for _, h := range c.held {
			byOwner[h.owner] = append(byOwner[h.owner], h.claim)
		}
		c.mu.Unlock()
		for owner, cls := range byOwner {
			fences := make(map[string]int64, len(cls))
			for _, cl := range cls {
				fences[cl.TaskID] = cl.Fence
			}
			lost, err := c.Renew(ctx, owner, cls)
			if err != nil {
				c.log.Error("renewing leases failed", "err", err, "owner", owner, "tasks", len(cls))
				continue
			}
			for _, id := range lost {
				c.mu.Lock()
				h := c.held[id]
				if h != nil && h.claim.Fence == fences[id] {
					delete(c.held, id)
				} else {
					h = nil // claimed again since: not the one that was lost
				}
				c.mu.Unlock()
				if h != nil {
					c.log.Warn("lease lost; abandoning the task", "task", id, "owner", owner)
					if h.cancel != nil {
						h.cancel()
					}
				}
			}
		}
	}
}

// promoteLoop makes scheduled tasks (delayed ones, retries after their
// back-off) runnable when they are due (see dueLoop). Every dispatcher runs
// one; the store promotes each task once.
func (c *Core) promoteLoop(ctx context.Context) {
	c.dueLoop(ctx, c.st.SubscribeScheduled, func(ctx context.Context) time.Time {
		n, due, err := c.st.PromoteDue(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			c.log.Error("promoting due scheduled tasks failed", "err", err)
		}
		if n > 0 {
			c.Wake()
		}
		return due
	})
}

// dueLoop runs step whenever work may be due: at once, then at the time
// step returns (its next due time; zero: none known), after the poll
// interval at the latest, or earlier when subscribe's channel announces an
// earlier due time (unix ms; store.Resubscribed: now).
func (c *Core) dueLoop(ctx context.Context, subscribe func(context.Context) (<-chan string, func()),
	step func(context.Context) time.Time) {
	announced := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			msgs, stop := subscribe(ctx)
			for text := range msgs {
				due, err := announcedTime(text)
				if err != nil {
					continue
				}
				select {
				case announced <- due:
				default: // one is pending: the loop looks at the store anyway
				}
			}
			stop()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Time{} // when the timer fires
	for {
		select {
		case <-ctx.Done():
			return
		case due := <-announced:
			if !next.IsZero() && !due.Before(next) {
				continue
			}
			timer.Reset(max(time.Until(due), 0))
			next = due
			continue
		case <-timer.C:
		}
		due := step(ctx)
		wait := c.cfg.Poll
		if !due.IsZero() {
			wait = min(wait, max(time.Until(due), 0))
		}
		next = time.Now().Add(wait)
		timer.Reset(wait)
	}
}

func (c *Core) reapLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.reap(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("reaping expired leases failed", "err", err)
			}
		}
	}
}

func (c *Core) reap(ctx context.Context) error {
	requeued, failed, err := c.st.ReapExpired(ctx, time.Now())
	if err != nil {
		return err
	}
	if len(requeued) > 0 {
		c.log.Info("requeued tasks whose lease expired", "count", len(requeued))
		c.Wake()
	}
	if len(failed) > 0 {
		c.log.Warn("tasks failed after their last attempt's lease expired", "count", len(failed))
	}
	return nil
}

// Task turns a claim into a sandbox task, decoding its payloads (the one
// place they are decoded on the way to a sandbox). Warm interpreters are
// reused per registered function, never between registrations (of other
// tenants, say) that happen to send the same bytes: the key is the
// function id. A payload that is not base64 becomes a FAILED result right
// away (the API checks it, but the store may hold data written by other
// tools).
func Task(cl store.Claim) (faastype.Task, *faastype.Result) {
	fn, err := pickle.DecodeBase64(cl.FnPayload)
	if err != nil {
		return faastype.Task{}, faastype.Failure(faastype.KindBadPayload, "the function payload is not base64: "+err.Error())
	}
	args, err := pickle.DecodeBase64(cl.ParamPayload)
	if err != nil {
		return faastype.Task{}, faastype.Failure(faastype.KindBadPayload, "the arguments payload is not base64: "+err.Error())
	}
	return faastype.Task{ID: cl.TaskID, Function: cl.FunctionID, Isolation: cl.Isolation, WantJSON: cl.WantJSON,
		Fn: fn, Args: args, Bundle: cl.Bundle, Timeout: cl.Timeout, MemoryBytes: cl.MemoryBytes, Env: cl.Env}, nil
}

// outcome is how res is stored for claim cl: Outcome, with the task's
// retry policy applied. The push and pull modes hold bare claims (id and
// fence) once the task is sent; a failure the policy may retry then reads
// the policy from the tracked claim, or from the store for a claim adopted
// after a restart.
func (c *Core) outcome(cl store.Claim, res *faastype.Result) store.Outcome {
	o := Outcome(res)
	// A bare claim has no function id; a full one with no policy has none.
	if o.Status == faastype.Failed && cl.Retry == nil && cl.FunctionID == "" {
		full, tracked := c.tracked(cl)
		if tracked {
			cl.Retry, cl.Retried = full.Retry, full.Retried
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			retry, retried, err := c.st.RetryState(ctx, cl.TaskID)
			cancel()
			if err != nil {
				c.log.Warn("reading a failed task's retry policy failed; recording the failure as final", "task", cl.TaskID, "err", err)
			}
			cl.Retry, cl.Retried = retry, retried
		}
	}
	o = store.RetryOutcome(cl, o, rand.Float64())
	if o.Retry {
		c.log.Info("task failed; its retry policy runs it again", "task", cl.TaskID, "attempt", cl.Attempt,
			"retry", cl.Retried+1, "of", cl.Retry.Max, "in", o.RetryDelay, "error", o.Error.Kind)
	}
	return o
}

// tracked is the full claim this dispatcher tracks under bare claim cl's
// task and fence, if it tracks one.
func (c *Core) tracked(cl store.Claim) (store.Claim, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.held[cl.TaskID]; h != nil && h.claim.Fence == cl.Fence && h.claim.FunctionID != "" {
		return h.claim, true
	}
	return store.Claim{}, false
}

// ref is cl's store reference (see refs).
func (c *Core) ref(ctx context.Context, cl store.Claim) (store.Ref, error) {
	refs, err := c.refs(ctx, []store.Claim{cl})
	if err != nil {
		return store.Ref{}, err
	}
	return refs[0], nil
}

// refs are the store references of cls. A bare claim (a remote worker's
// result or report names only the task and the fence) gets its owner from
// the claim this dispatcher tracks under that fence, or else from the
// store (a claim adopted after a restart), in one round trip for all.
func (c *Core) refs(ctx context.Context, cls []store.Claim) ([]store.Ref, error) {
	refs := make([]store.Ref, len(cls))
	var ask []int
	for i, cl := range cls {
		refs[i] = cl.Ref()
		if cl.FunctionID != "" {
			continue // a full claim knows its owner
		}
		if full, ok := c.tracked(cl); ok {
			refs[i].Owner = full.Owner
		} else {
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 {
		return refs, nil
	}
	ids := make([]string, len(ask))
	for j, i := range ask {
		ids[j] = cls[i].TaskID
	}
	owners, err := c.st.TaskOwners(ctx, ids)
	if err != nil {
		return nil, err
	}
	for j, i := range ask {
		refs[i].Owner = owners[j]
	}
	return refs, nil
}

// Outcome is how a sandbox result is stored.
func Outcome(res *faastype.Result) store.Outcome {
	t := res.Timings
	return store.Outcome{
		Status:  res.Status,
		Result:  pickle.EncodeBase64(res.Payload),
		Error:   res.Error,
		Stdout:  string(res.Stdout),
		Stderr:  string(res.Stderr),
		Timings: &t,
		// JSON results are only made when asked for (the claim's WantJSON).
		ResultJSON: string(res.JSON),
	}
}

// announcedTime reads a due time announced on a pub/sub channel (unix ms);
// store.Resubscribed, the subscription coming back after announcements
// may have been lost, means now: look at the store at once.
func announcedTime(text string) (time.Time, error) {
	if text == store.Resubscribed {
		return time.Now(), nil
	}
	ms, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}
