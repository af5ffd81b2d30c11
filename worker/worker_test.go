package worker_test

// In-process tests of the workers against the push and pull dispatchers on
// a real redis-server, with a fake sandbox pool: quick, and they run the
// concurrent code of both packages under the race detector. The tests in
// ../tests run the real binary as separate processes.

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/testkit"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
	"github.com/wasmfaas/wasmfaas/worker"
)

// echoRunner returns the arguments payload as the result after delay.
type echoRunner struct {
	n     int
	delay time.Duration
	mu    sync.Mutex
	runs  map[string]int
}

func newEcho(n int, delay time.Duration) *echoRunner {
	return &echoRunner{n: n, delay: delay, runs: map[string]int{}}
}

func (r *echoRunner) Size() int { return r.n }

func (r *echoRunner) Run(ctx context.Context, t faastype.Task) (*faastype.Result, error) {
	r.mu.Lock()
	r.runs[t.ID]++
	r.mu.Unlock()
	select {
	case <-time.After(r.delay):
		return &faastype.Result{Status: faastype.Completed, Payload: t.Args}, nil
	case <-ctx.Done():
		return &faastype.Result{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindCancelled, Message: "cancelled"}}, nil
	}
}

func (r *echoRunner) ran() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.runs {
		n += c
	}
	return n
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

func goRun(t *testing.T, f func(ctx context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := f(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func startDispatcher(t *testing.T, mode string, st *store.Store, url string, opts ...func(*dispatch.RemoteConfig)) *running {
	cfg := dispatch.RemoteConfig{
		Config:    dispatch.Config{Store: st, Name: "d", Lease: time.Second, Drain: 100 * time.Millisecond, Poll: 200 * time.Millisecond, Logger: testkit.Logger()},
		Listen:    url,
		Heartbeat: 50 * time.Millisecond,
		Misses:    4,
		Limits:    faastype.Limits{Timeout: 2 * time.Second},
		Grace:     time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if mode == "push" {
		return goRun(t, func(ctx context.Context) error { return dispatch.RunPush(ctx, cfg) })
	}
	return goRun(t, func(ctx context.Context) error { return dispatch.RunPull(ctx, cfg) })
}

func startWorker(t *testing.T, mode, url, name string, pool worker.Runner, drain time.Duration, opts ...func(*worker.Config)) *running {
	cfg := worker.Config{URL: url, Name: name, Heartbeat: 50 * time.Millisecond, Misses: 4, Drain: drain, Logger: testkit.Logger()}
	for _, o := range opts {
		o(&cfg)
	}
	if mode == "push" {
		return goRun(t, func(ctx context.Context) error { return worker.RunPush(ctx, cfg, pool) })
	}
	return goRun(t, func(ctx context.Context) error { return worker.RunPull(ctx, cfg, pool) })
}

func enqueue(t *testing.T, st *store.Store, n int) ([]string, []string) {
	ids, args := make([]string, n), make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		args[i] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("args-%d", i)))
		if err := st.Enqueue(context.Background(), store.Task{ID: ids[i], FunctionID: "f", FnPayload: "Zm4=", ParamPayload: args[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return ids, args
}

func check(t *testing.T, ids, args []string, tasks map[string]store.Task, attempts int) {
	t.Helper()
	for i, id := range ids {
		task := tasks[id]
		if task.Status != faastype.Completed || task.Result != args[i] {
			t.Errorf("task %d: %s %q %+v", i, task.Status, task.Result, task.Error)
		}
		if attempts > 0 && task.Attempts != attempts {
			t.Errorf("task %d: %d attempts, want %d", i, task.Attempts, attempts)
		}
	}
}

var modes = []string{"push", "pull"}

// testSecret is the worker secret of the tests that use one.
var testSecret = []byte("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")

func withSecret(secret []byte) (func(*dispatch.RemoteConfig), func(*worker.Config)) {
	return func(c *dispatch.RemoteConfig) { c.Secret = secret }, func(c *worker.Config) { c.Secret = secret }
}

func TestRun(t *testing.T) {
	for _, mode := range modes {
		for _, secured := range []bool{false, true} {
			name := mode
			var secret []byte
			if secured {
				name, secret = mode+"-secret", testSecret
			}
			t.Run(name, func(t *testing.T) { testRun(t, mode, secret) })
		}
	}
}

func testRun(t *testing.T, mode string, secret []byte) {
	dopt, wopt := withSecret(secret)
	st := store.New(redistest.Start(t), store.Options{})
	url := testkit.FreeURL(t)
	startDispatcher(t, mode, st, url, dopt)
	a, b := newEcho(2, 20*time.Millisecond), newEcho(2, 20*time.Millisecond)
	startWorker(t, mode, url, "a", a, time.Second, wopt)
	startWorker(t, mode, url, "b", b, time.Second, wopt)
	ids, args := enqueue(t, st, 60)
	check(t, ids, args, storetest.WaitFinal(t, st, ids, 30*time.Second), 1)
	if a.ran() == 0 || b.ran() == 0 || a.ran()+b.ran() != len(ids) {
		t.Errorf("runs: a %d, b %d, tasks %d", a.ran(), b.ran(), len(ids))
	}
}

// A worker that stops hands back what it cannot finish in its drain time;
// that costs no attempt, and the other worker runs it.
func TestWorkerStopHandsBack(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			startDispatcher(t, mode, st, url)
			a := newEcho(2, 400*time.Millisecond)
			wa := startWorker(t, mode, url, "a", a, 50*time.Millisecond)
			ids, args := enqueue(t, st, 8)
			deadline := time.Now().Add(10 * time.Second)
			for a.ran() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("worker a got nothing")
				}
				time.Sleep(5 * time.Millisecond)
			}
			wa.stop()
			startWorker(t, mode, url, "b", newEcho(2, 10*time.Millisecond), time.Second)
			check(t, ids, args, storetest.WaitFinal(t, st, ids, 30*time.Second), 1)
		})
	}
}

// The dispatcher stops (draining briefly, handing back what is still out)
// and another starts: the workers reconnect (a new channel, a new proof)
// and everything completes.
func TestDispatcherRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			dopt, wopt := withSecret(testSecret)
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			d := startDispatcher(t, mode, st, url, dopt)
			w := newEcho(2, 150*time.Millisecond)
			startWorker(t, mode, url, "a", w, time.Second, wopt)
			ids, args := enqueue(t, st, 12)
			deadline := time.Now().Add(10 * time.Second)
			for w.ran() < 3 {
				if time.Now().After(deadline) {
					t.Fatal("the worker got too little")
				}
				time.Sleep(5 * time.Millisecond)
			}
			d.stop()
			time.Sleep(100 * time.Millisecond)
			startDispatcher(t, mode, st, url, dopt)
			check(t, ids, args, storetest.WaitFinal(t, st, ids, 30*time.Second), 0)
		})
	}
}

// A worker that starts before its dispatcher waits for it.
func TestWorkerFirst(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			startWorker(t, mode, url, "a", newEcho(1, time.Millisecond), time.Second)
			time.Sleep(300 * time.Millisecond)
			startDispatcher(t, mode, st, url)
			ids, args := enqueue(t, st, 5)
			check(t, ids, args, storetest.WaitFinal(t, st, ids, 30*time.Second), 1)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	if err := worker.RunPush(context.Background(), worker.Config{URL: "tcp://127.0.0.1:1", Secret: []byte("short")}, newEcho(1, 0)); err == nil {
		t.Error("RunPush with a short secret: no error")
	}
	if err := worker.RunPull(context.Background(), worker.Config{URL: "tcp://127.0.0.1:1", Secret: []byte("short")}, newEcho(1, 0)); err == nil {
		t.Error("RunPull with a short secret: no error")
	}
	for _, url := range []string{"", "ipc:///tmp/x", "tcp://nohostport", "http://127.0.0.1:5555"} {
		err := worker.RunPush(context.Background(), worker.Config{URL: url}, newEcho(1, 0))
		if err == nil {
			t.Errorf("RunPush with URL %q: no error", url)
		}
		if err := worker.RunPull(context.Background(), worker.Config{URL: url}, newEcho(1, 0)); err == nil {
			t.Errorf("RunPull with URL %q: no error", url)
		}
	}
}

// A result larger than the dispatcher takes (its max message is smaller
// than the worker's) is turned into a RESULT_TOO_LARGE failure by the
// worker instead of being dropped on the way, again and again.
func TestResultLargerThanTheDispatcherTakes(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			startDispatcher(t, mode, st, url, func(c *dispatch.RemoteConfig) { c.Wire.MaxMessage = 256 << 10 })
			startWorker(t, mode, url, "a", newEcho(1, 0), time.Second)
			small := base64.StdEncoding.EncodeToString([]byte("small"))
			big := base64.StdEncoding.EncodeToString(make([]byte, 300<<10))
			ids := []string{uuid.NewString(), uuid.NewString()}
			for i, a := range []string{big, small} {
				if err := st.Enqueue(context.Background(), store.Task{ID: ids[i], FunctionID: "f", FnPayload: "Zm4=", ParamPayload: a}); err != nil {
					t.Fatal(err)
				}
			}
			tasks := storetest.WaitFinal(t, st, ids, 30*time.Second)
			if task := tasks[ids[0]]; task.Status != faastype.Failed || task.Error == nil || task.Error.Kind != faastype.KindResultTooLarge || task.Attempts != 1 {
				t.Errorf("big result: %s %+v attempts %d", task.Status, task.Error, task.Attempts)
			}
			if task := tasks[ids[1]]; task.Status != faastype.Completed || task.Result != small {
				t.Errorf("small result: %s %q", task.Status, task.Result)
			}
		})
	}
}

// A task larger than a worker takes fails at once with PAYLOAD_TOO_LARGE
// instead of being lost on the way to it, again and again.
func TestTaskLargerThanTheWorkerTakes(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			startDispatcher(t, mode, st, url)
			startWorker(t, mode, url, "a", newEcho(1, 0), time.Second, func(c *worker.Config) { c.Wire.MaxMessage = 256 << 10 })
			small := base64.StdEncoding.EncodeToString([]byte("small"))
			big := base64.StdEncoding.EncodeToString(make([]byte, 300<<10))
			ids := []string{uuid.NewString(), uuid.NewString()}
			for i, a := range []string{big, small} {
				if err := st.Enqueue(context.Background(), store.Task{ID: ids[i], FunctionID: "f", FnPayload: "Zm4=", ParamPayload: a}); err != nil {
					t.Fatal(err)
				}
			}
			tasks := storetest.WaitFinal(t, st, ids, 30*time.Second)
			if task := tasks[ids[0]]; task.Status != faastype.Failed || task.Error == nil || task.Error.Kind != faastype.KindPayloadTooLarge || task.Attempts != 1 {
				t.Errorf("big task: %s %+v attempts %d", task.Status, task.Error, task.Attempts)
			}
			if task := tasks[ids[1]]; task.Status != faastype.Completed || task.Result != small {
				t.Errorf("small task: %s %q", task.Status, task.Result)
			}
		})
	}
}
