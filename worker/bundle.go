package worker

// Bundles: a task whose function carries a bundle (a zip of Python
// modules, package bundle) names it by hash; the dispatcher never sends the
// zip with the task. Before such a task runs, the worker takes the zip from
// its own cache (bounded in bytes, shared by all the sandboxes of the
// process), or asks the dispatcher for it with FETCH on its connection (push)
// or on the task's lane socket (pull). One FETCH per bundle is in flight at
// a time however many tasks want it; the others wait for its answer. The
// BUNDLE answer decides (see wire/message.go): the bytes go to the sandbox
// pool with the task; a bundle the store does not have fails the task with
// BAD_PAYLOAD, one too large for this worker's messages with
// PAYLOAD_TOO_LARGE; anything else (no answer in time, a lost connection,
// the store away, a dispatcher that does not see this worker hold the task)
// hands the task back (RELEASE), to run later, here or elsewhere.
//
// The task goroutine asks its connection loop (the only user of the socket)
// through a channel, and the loop hands the answer back; a worker never
// reads a bundle from Redis.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/wire"
)

// DefaultBundleCache is Config.BundleCache's default.
const DefaultBundleCache = 256 << 20

// DefaultBundleTimeout is Config.BundleTimeout's default.
const DefaultBundleTimeout = 10 * time.Second

// bundles are the bundles of a worker process.
type bundles struct {
	cache   *bundle.Cache[[]byte] // by hash: content addressed, whoever's task asked
	timeout time.Duration
}

func newBundles(cfg Config) *bundles {
	return &bundles{cache: bundle.NewCache[[]byte](cfg.BundleCache), timeout: cfg.BundleTimeout}
}

// fetchReq asks a connection loop to FETCH a bundle for a task.
type fetchReq struct {
	ctx  context.Context // the asking task's fetch: a request whose ctx ended is dropped
	ref  wire.Ref
	hash string
	ans  chan fetchAns // buffered: the loop never waits on it
}

// fetchAns is what the dispatcher answered (or what the loop says instead).
type fetchAns struct {
	data []byte
	code int
	text string
}

// answer hands a an answer; only the first counts.
func (r *fetchReq) answer(a fetchAns) {
	select {
	case r.ans <- a:
	default:
	}
}

// fail answers r with UNAVAILABLE: the task goes back.
func (r *fetchReq) fail(why string) {
	r.answer(fetchAns{code: wire.BundleUnavailable, text: why})
}

// bundleError is a BUNDLE answer without the bytes.
type bundleError struct {
	code int
	text string
}

func (e *bundleError) Error() string {
	return fmt.Sprintf("the dispatcher did not give the bundle (code %d): %s", e.code, e.text)
}

// errStoppedBeforeRun: the task ended before it ran (no bundle); handed
// back.
var errStoppedBeforeRun = errors.New("no bundle: not run")

// run runs a task on the pool, with its bundle's bytes if it has one; a
// nil result with a nil error means it did not run and goes back.
func (ts *tasks) run(ctx context.Context, t wire.Task) (*faastype.Result, error) {
	task := t.Task
	task.BundleData = nil
	if task.Bundle != "" {
		data, err := ts.bundle(ctx, t)
		var be *bundleError
		switch {
		case errors.As(err, &be) && be.code == wire.BundleMissing:
			ts.log.Warn("a task's bundle is not in the store; the task fails", "task", t.ID, "bundle", t.Bundle)
			return faastype.Failure(faastype.KindBadPayload, bundleText(be.text, fmt.Sprintf(
				"the function's bundle %s is not in the store (deleted?); register the function again", t.Bundle))), nil
		case errors.As(err, &be) && be.code == wire.BundleTooLarge:
			ts.log.Warn("a task's bundle does not fit in a message this worker takes; the task fails", "task", t.ID, "bundle", t.Bundle)
			return faastype.Failure(faastype.KindPayloadTooLarge, bundleText(be.text, "the function's bundle does not fit in a message to the worker")), nil
		case err != nil:
			if ctx.Err() == nil {
				ts.log.Warn("could not get a task's bundle from the dispatcher; handing the task back", "task", t.ID, "bundle", t.Bundle, "err", err)
			}
			return nil, errStoppedBeforeRun
		}
		task.BundleData = data
	}
	return ts.pool.Run(ctx, task)
}

func bundleText(said, fallback string) string {
	if said != "" {
		return said
	}
	return fallback
}

// bundle returns the zip of t's bundle: cached, or fetched from the
// dispatcher within the bundle timeout.
func (ts *tasks) bundle(ctx context.Context, t wire.Task) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ts.bundles.timeout)
	defer cancel()
	ref := wire.Ref{ID: t.ID, Fence: t.Fence}
	for tries := 0; ; tries++ {
		fetched := false
		data, err := ts.bundles.cache.Fetch(ctx, t.Bundle, func(ctx context.Context) ([]byte, int64, error) {
			fetched = true
			data, err := ts.fetch(ctx, ref, t.Bundle)
			return data, int64(len(data)), err
		})
		if err == nil && fetched {
			ts.log.Debug("fetched a bundle from the dispatcher", "task", t.ID, "bundle", t.Bundle, "bytes", len(data),
				"cached", ts.bundles.cache.Len(), "cached_bytes", ts.bundles.cache.Bytes())
		}
		// Another task's fetch that was stopped (its task was, or its time
		// was up) or refused (that task is no longer its worker's) is not
		// this one's failure: ask again.
		var be *bundleError
		if err != nil && !fetched && ctx.Err() == nil && tries < 3 &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
				errors.As(err, &be) && be.code == wire.BundleRefused) {
			continue
		}
		return data, err
	}
}

// fetch asks the connection loop for a bundle and waits for the answer.
func (ts *tasks) fetch(ctx context.Context, ref wire.Ref, hash string) ([]byte, error) {
	req := &fetchReq{ctx: ctx, ref: ref, hash: hash, ans: make(chan fetchAns, 1)}
	select {
	case ts.fetches <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case a := <-req.ans:
		if a.code == wire.BundleOK && len(a.data) > 0 {
			return a.data, nil
		}
		if a.code == wire.BundleOK {
			a.code, a.text = wire.BundleUnavailable, "an empty bundle"
		}
		return nil, &bundleError{code: a.code, text: a.text}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answerOf is the answer a BUNDLE message gives.
func answerOf(m *wire.Message) fetchAns {
	return fetchAns{data: m.BundleData, code: m.Code, text: m.Text}
}
