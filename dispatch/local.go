package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Runner runs tasks on sandboxes; *runtime.Pool is one.
type Runner interface {
	Run(ctx context.Context, t faastype.Task) (*faastype.Result, error)
	Size() int
	Limits() faastype.Limits
	Isolation() faastype.Isolation
	Stats() faastype.PoolStats
}

// RunLocal is the local mode: claim as many tasks as there are free
// sandboxes in pool and run them in this process, until ctx ends. On the
// way out it stops claiming, lets running tasks finish for up to
// cfg.Drain, and gives the rest back to the queue.
func RunLocal(ctx context.Context, cfg Config, pool Runner) error {
	if cfg.Describe == nil {
		cfg.Describe = func() store.Node {
			st := pool.Stats()
			return store.Node{Role: "dispatcher", Mode: "local", Sandboxes: pool.Size(), Busy: st.Busy,
				Isolation: pool.Isolation(), Limits: pool.Limits(), Stats: st}
		}
	}
	s, err := start(cfg, "local")
	if err != nil {
		return err
	}
	defer s.close()
	core, bgCtx, log := s.core, s.bgCtx, s.log
	log.Info("dispatcher ready", "name", core.cfg.Name, "sandboxes", pool.Size())

	free := make(chan struct{}, pool.Size())
	for i := 0; i < pool.Size(); i++ {
		free <- struct{}{}
	}
	capped := core.st.MaxRunning() > 0
	var running sync.WaitGroup
	for ctx.Err() == nil {
		// Wait for at least one free sandbox, then take every free one.
		select {
		case <-free:
		case <-ctx.Done():
			continue
		}
		n := 1
		take := func() {
			for {
				select {
				case <-free:
					n++
				default:
					return
				}
			}
		}
		take()
		if w, idle := core.NothingNew(); idle {
			core.WaitSince(ctx, w)
			take() // the sandboxes freed meanwhile claim too
		}
		wakes := core.Wakes()
		claims, err := core.Claim(bgCtx, n)
		if err != nil {
			log.Error("claiming tasks failed", "err", err)
		}
		for i := len(claims); i < n; i++ {
			free <- struct{}{}
		}
		if len(claims) == 0 {
			core.WaitSince(ctx, wakes)
			continue
		}
		for _, cl := range claims {
			taskCtx, cancel := context.WithCancel(bgCtx)
			core.Track(cl, cancel)
			running.Add(1)
			go func() {
				defer running.Done()
				// With a running cap (store.Options.MaxRunning), a freed
				// sandbox wakes a claim loop that found nothing to claim:
				// the task's end may have brought its tenant back under its
				// cap. Without one, its completion's claim just found the
				// queue empty.
				defer func() {
					free <- struct{}{}
					if capped {
						core.Wake()
					}
				}()
				for {
					res := runClaim(taskCtx, bgCtx, core, pool, cl)
					cancel()
					if res == nil {
						return // released
					}
					// Record it and take the sandbox's next task in one
					// round trip; none once the dispatcher is stopping.
					want := 1
					if ctx.Err() != nil {
						want = 0
					}
					next := core.CompleteAndClaim(bgCtx, cl, res, want)
					if len(next) == 0 {
						return
					}
					cl = next[0]
					taskCtx, cancel = context.WithCancel(bgCtx)
					core.Track(cl, cancel)
				}
			}()
		}
	}
	log.Info("dispatcher stopping", "running", core.Held(), "drain", core.cfg.Drain)
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(core.cfg.Drain):
		log.Warn("stopping the tasks still running; they go back to the queue", "running", core.Held())
		s.stopBg()
		<-drained
	}
	return nil
}

// runClaim runs one claimed task on pool and returns its outcome, or nil if
// the task was given back (its bundle could not be read, or the lease was
// lost or the dispatcher is stopping: not an outcome of the task).
func runClaim(taskCtx, bgCtx context.Context, core *Core, pool Runner, cl store.Claim) *faastype.Result {
	task, bad := Task(cl)
	if bad != nil {
		return bad
	}
	if task.Bundle != "" {
		var err error
		task.BundleData, err = core.Bundle(taskCtx, cl.Owner, task.Bundle)
		switch {
		case errors.Is(err, ErrNoBundle):
			return NoBundle(task.Bundle)
		case err != nil:
			// The store is away (or the lease was lost): run it later.
			core.Logger().Warn("reading a task's bundle failed; it goes back to the queue", "task", cl.TaskID, "err", err)
			core.Release(context.Background(), cl)
			return nil
		}
	}
	res, err := pool.Run(taskCtx, task)
	if err != nil || (res.Error != nil && res.Error.Kind == faastype.KindCancelled) {
		// Lost lease or shutdown: not an outcome of the task.
		if bgCtx.Err() != nil || taskCtx.Err() != nil {
			core.Release(context.Background(), cl)
		}
		return nil
	}
	return res
}
