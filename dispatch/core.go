package dispatch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/wasmfaas/wasmfaas/runtime"
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
	Drain  time.Duration
	Logger *slog.Logger
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Core is the mode-independent part of a dispatcher.
type Core struct {
	cfg  Config
	st   *store.Store
	log  *slog.Logger
	wake chan struct{}

	mu   sync.Mutex
	held map[string]*held // task id -> claim being worked on
}

type held struct {
	claim  store.Claim
	cancel context.CancelFunc // called when the lease is lost
}

// NewCore prepares a core; Start runs its background loops.
func NewCore(cfg Config) (*Core, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Core{cfg: cfg, st: cfg.Store, log: cfg.Logger, wake: make(chan struct{}, 1), held: map[string]*held{}}, nil
}

// Start recovers expired leases once, then keeps renewing, reaping and
// listening for new tasks until ctx ends. It returns when the first
// recovery is done.
func (c *Core) Start(ctx context.Context, wg *sync.WaitGroup) error {
	if err := c.reap(ctx); err != nil {
		return err
	}
	wg.Add(3)
	go func() { defer wg.Done(); c.renewLoop(ctx) }()
	go func() { defer wg.Done(); c.reapLoop(ctx) }()
	go func() { defer wg.Done(); c.listen(ctx) }()
	return nil
}

// Wake makes a waiting Wait return early.
func (c *Core) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Wait sleeps until a task may be available (a Tasks notification, a Wake,
// or the poll interval) or ctx ends.
func (c *Core) Wait(ctx context.Context) {
	t := time.NewTimer(c.cfg.Poll)
	defer t.Stop()
	select {
	case <-c.wake:
	case <-t.C:
	case <-ctx.Done():
	}
}

func (c *Core) listen(ctx context.Context) {
	for ctx.Err() == nil {
		ids, stop := c.st.SubscribeTasks(ctx)
		for range ids {
			c.Wake()
		}
		stop()
		// The subscription ended (Redis restarted?): polling covers the gap.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Claim takes up to n tasks and tracks their leases. cancel is called for a
// task whose lease this dispatcher loses (it must stop working on it).
func (c *Core) Claim(ctx context.Context, n int) ([]store.Claim, error) {
	claims, err := c.st.Claim(ctx, c.cfg.Name, n, c.cfg.Lease)
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// Track registers a claim whose lease must be renewed while it runs;
// cancel is called if the lease is lost anyway.
func (c *Core) Track(cl store.Claim, cancel context.CancelFunc) {
	c.mu.Lock()
	c.held[cl.TaskID] = &held{claim: cl, cancel: cancel}
	c.mu.Unlock()
}

func (c *Core) untrack(id string) {
	c.mu.Lock()
	delete(c.held, id)
	c.mu.Unlock()
}

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
func (c *Core) Complete(ctx context.Context, cl store.Claim, res *runtime.Result) bool {
	defer c.untrack(cl.TaskID)
	o := Outcome(res)
	backoff := 50 * time.Millisecond
	for {
		ok, err := c.st.Complete(ctx, cl.TaskID, cl.Fence, o)
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

// Release gives a claimed task back to the queue without it counting as an
// attempt (used when shutting down).
func (c *Core) Release(ctx context.Context, cl store.Claim) {
	defer c.untrack(cl.TaskID)
	if err := c.st.Release(ctx, cl.TaskID, cl.Fence); err != nil {
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
		}
		c.mu.Lock()
		fences := make(map[string]int64, len(c.held))
		for id, h := range c.held {
			fences[id] = h.claim.Fence
		}
		c.mu.Unlock()
		if len(fences) == 0 {
			continue
		}
		lost, err := c.st.Renew(ctx, c.cfg.Name, fences, c.cfg.Lease)
		if err != nil {
			c.log.Error("renewing leases failed", "err", err, "tasks", len(fences))
			continue
		}
		for _, id := range lost {
			c.mu.Lock()
			h := c.held[id]
			delete(c.held, id)
			c.mu.Unlock()
			if h != nil {
				c.log.Warn("lease lost; abandoning the task", "task", id)
				if h.cancel != nil {
					h.cancel()
				}
			}
		}
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

// Task turns a claim into a sandbox task. A payload that is not base64
// becomes a FAILED result right away (the API checks it, but the store may
// hold data written by other tools).
func Task(cl store.Claim) (runtime.Task, *runtime.Result) {
	fn, err := store.DecodeBase64(cl.FnPayload)
	if err != nil {
		return runtime.Task{}, failure(runtime.KindBadPayload, "the function payload is not base64: "+err.Error())
	}
	args, err := store.DecodeBase64(cl.ParamPayload)
	if err != nil {
		return runtime.Task{}, failure(runtime.KindBadPayload, "the arguments payload is not base64: "+err.Error())
	}
	t := runtime.Task{ID: cl.TaskID, FnPayload: fn, ArgsPayload: args, Isolation: cl.Isolation}
	if h, err := hex.DecodeString(cl.FnHash); err == nil && len(h) == len(t.FnHash) {
		copy(t.FnHash[:], h)
	}
	return t, nil
}

func failure(kind runtime.ErrorKind, msg string) *runtime.Result {
	return &runtime.Result{Status: runtime.Failed, Error: &runtime.TaskError{Kind: kind, Message: msg},
		Payload: runtime.PickleException("ValueError", msg)}
}

// Outcome is how a sandbox result is stored.
func Outcome(res *runtime.Result) store.Outcome {
	t := res.Timings
	return store.Outcome{
		Status:  string(res.Status),
		Result:  base64Std(res.Payload),
		Error:   res.Error,
		Stdout:  string(res.Stdout),
		Stderr:  string(res.Stderr),
		Timings: &t,
	}
}
