package worker_test

// Bundles on the worker side, against a fake dispatcher that speaks the
// wire protocol (push: ROUTER, pull: REP) and answers FETCH as each test
// says: a task with a bundle fetches it once, later tasks use the cache,
// concurrent tasks share one fetch, and the answers without the bytes fail
// the task or hand it back as the protocol says.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/testkit"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
	"github.com/wasmfaas/wasmfaas/wire"
	"github.com/wasmfaas/wasmfaas/worker"
)

// bundleRunner records the bundle bytes each task reached the pool with.
type bundleRunner struct {
	n     int
	delay time.Duration
	mu    sync.Mutex
	got   map[string][]byte // task id -> BundleData
}

func newBundleRunner(n int, delay time.Duration) *bundleRunner {
	return &bundleRunner{n: n, delay: delay, got: map[string][]byte{}}
}

func (r *bundleRunner) Size() int { return r.n }

func (r *bundleRunner) Run(ctx context.Context, t faastype.Task) (*faastype.Result, error) {
	r.mu.Lock()
	r.got[t.ID] = append([]byte(nil), t.BundleData...)
	r.mu.Unlock()
	select {
	case <-time.After(r.delay):
		return &faastype.Result{Status: faastype.Completed, Payload: t.Args}, nil
	case <-ctx.Done():
		return faastype.Failure(faastype.KindCancelled, "cancelled"), nil
	}
}

func (r *bundleRunner) ran(id string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.got[id]
	return b, ok
}

// fakeDispatcher hands out the tasks it is given, records what the worker
// sends, and answers FETCH with onFetch (nil: no answer; a delay holds the
// answer back, in push mode).
type fakeDispatcher struct {
	mode    string
	sock    zmq4.Socket
	onFetch func(m *wire.Message) (*wire.Message, time.Duration)

	mu       sync.Mutex
	queue    []wire.Task
	chans    map[string]*wire.Channel // push: by routing id; pull: by channel id
	rid      []byte                   // push: the registered connection
	seq      uint64
	lastWork map[string]uint64 // pull: by channel, the seq of the last WORK sent on it
	badSeq   []string          // pull: PULLs that did not name the last WORK of their socket
	fetches  []wire.Ref
	results  map[string]*faastype.Result
	released []wire.Ref
}

func startFake(t *testing.T, mode string, onFetch func(*wire.Message) (*wire.Message, time.Duration)) (*fakeDispatcher, string) {
	url := testkit.FreeURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	listen := wire.ListenRouter
	if mode == "pull" {
		listen = wire.ListenRep
	}
	sock, err := listen(ctx, url, wire.Options{Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDispatcher{mode: mode, sock: sock, onFetch: onFetch, chans: map[string]*wire.Channel{}, results: map[string]*faastype.Result{},
		lastWork: map[string]uint64{}}
	done := make(chan struct{})
	go func() { defer close(done); f.serve() }()
	t.Cleanup(func() { cancel(); sock.Close(); <-done })
	return f, url
}

// give queues tasks; they go out with the next message from the worker.
func (f *fakeDispatcher) give(ts ...wire.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, ts...)
}

func (f *fakeDispatcher) serve() {
	for {
		msg, err := f.sock.Recv()
		if err != nil {
			return
		}
		var rid []byte
		if f.mode == "push" {
			if len(msg.Frames) != 2 {
				continue
			}
			rid = msg.Frames[0]
		}
		m, err := wire.Decode(msg.Frames[len(msg.Frames)-1])
		if err != nil {
			if f.mode == "pull" {
				f.sock.Send(zmq4.NewMsg((&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeMalformed}).Encode(nil)))
			}
			continue
		}
		if f.mode == "push" {
			f.push(rid, m)
		} else {
			f.pull(m)
		}
	}
}

func (f *fakeDispatcher) hello(m *wire.Message, key func(id wire.ID16) string) []byte {
	id, nonce := wire.NewID16(), wire.NewNonce()
	f.chans[key(id)] = wire.DispatcherChannel(nil, m, id, nonce)
	return (&wire.Message{Type: wire.MsgChallenge, Channel: id, Nonce: nonce}).Encode(nil)
}

// send seals m for the push connection rid and sends it. f.mu is held.
func (f *fakeDispatcher) send(rid []byte, m *wire.Message) {
	if ch := f.chans[string(rid)]; ch != nil {
		f.sock.Send(zmq4.NewMsgFrom(rid, ch.Seal(m)))
	}
}

func (f *fakeDispatcher) push(rid []byte, m *wire.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Type == wire.MsgHello {
		f.sock.Send(zmq4.NewMsgFrom(rid, f.hello(m, func(wire.ID16) string { return string(rid) })))
		return
	}
	ch := f.chans[string(rid)]
	if ch == nil || ch.Open(m) != nil {
		return
	}
	switch m.Type {
	case wire.MsgRegister:
		f.rid = rid
		f.send(rid, &wire.Message{Type: wire.MsgWelcome, Incarnation: wire.ID16{1}, Heartbeat: 50 * time.Millisecond, Misses: 4,
			Timeout: 2 * time.Second})
	case wire.MsgHeartbeat:
		f.send(rid, &wire.Message{Type: wire.MsgHeartbeat})
	case wire.MsgResult:
		r := m.Results[0]
		f.results[r.ID] = r.Result
		f.send(rid, &wire.Message{Type: wire.MsgAck, Acks: []wire.Ack{{ID: r.ID, Fence: r.Fence, Recorded: true}}})
	case wire.MsgRelease:
		f.released = append(f.released, m.Released...)
	case wire.MsgFetch:
		f.fetches = append(f.fetches, m.Fetch)
		reply, delay := f.onFetch(m)
		switch {
		case reply == nil:
		case delay > 0:
			time.AfterFunc(delay, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.send(rid, reply)
			})
		default:
			f.send(rid, reply)
		}
	}
	if string(f.rid) == string(rid) {
		for _, t := range f.queue {
			f.send(rid, &wire.Message{Type: wire.MsgTask, Tasks: []wire.Task{t}})
		}
		f.queue = nil
	}
}

func (f *fakeDispatcher) pull(m *wire.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Type == wire.MsgHello {
		f.sock.Send(zmq4.NewMsg(f.hello(m, func(id wire.ID16) string { return string(id[:]) })))
		return
	}
	ch := f.chans[string(m.Channel[:])]
	if ch == nil || ch.Open(m) != nil {
		f.sock.Send(zmq4.NewMsg((&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnknownSession}).Encode(nil)))
		return
	}
	switch m.Type {
	case wire.MsgPull:
		// A FETCH between PULLs is no WORK: the PULL still names the
		// socket's last WORK.
		if last, ok := f.lastWork[string(m.Channel[:])]; ok && m.GotSeq != last {
			f.badSeq = append(f.badSeq, fmt.Sprintf("got_seq %d after WORK %d", m.GotSeq, last))
		}
		reply := &wire.Message{Type: wire.MsgWork, Incarnation: wire.ID16{1}}
		for _, r := range m.Results {
			f.results[r.ID] = r.Result
			reply.Acks = append(reply.Acks, wire.Ack{ID: r.ID, Fence: r.Fence, Recorded: true})
		}
		f.released = append(f.released, m.Released...)
		n := min(m.Free, len(f.queue))
		reply.Tasks, f.queue = f.queue[:n], f.queue[n:]
		if n == 0 {
			reply.RetryAfter = 20 * time.Millisecond
		}
		f.seq++
		reply.WorkSeq = f.seq
		f.lastWork[string(m.Channel[:])] = f.seq
		f.sock.Send(zmq4.NewMsg(ch.SealAs(reply, m.Seq)))
	case wire.MsgFetch:
		f.fetches = append(f.fetches, m.Fetch)
		if reply, _ := f.onFetch(m); reply != nil {
			f.sock.Send(zmq4.NewMsg(ch.SealAs(reply, m.Seq)))
		}
	default:
		f.sock.Send(zmq4.NewMsg(ch.SealAs(&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected}, m.Seq)))
	}
}

func (f *fakeDispatcher) fetchCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fetches)
}

func (f *fakeDispatcher) result(id string) *faastype.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.results[id]
}

func (f *fakeDispatcher) wasReleased(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.released {
		if r.ID == id {
			return true
		}
	}
	return false
}

// waitUntil polls cond for up to within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testHash = "5f1c0ffee0ddba11d15ea5eca11ab1e5c0de5ca1ab1e5eed5a1ad0babe5b1a5e"

var testZip = []byte("PK\x03\x04 a bundle's zip \x00\xff")

func bundleTask(id string) wire.Task {
	return wire.Task{Task: faastype.Task{ID: id, Function: "f", Isolation: faastype.Warm, Timeout: 2 * time.Second,
		Fn: []byte("fn"), Args: []byte("args-" + id), Bundle: testHash}, Fence: 7, Attempt: 1}
}

// bundleAnswer answers a FETCH with the test bundle.
func bundleAnswer(m *wire.Message) *wire.Message {
	return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, BundleData: testZip}
}

// A task with a bundle makes one FETCH and reaches the pool with the bytes;
// a second task of the same bundle, after it, makes none (warm cache).
func TestBundleFetchedOnceThenCached(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			f, url := startFake(t, mode, func(m *wire.Message) (*wire.Message, time.Duration) { return bundleAnswer(m), 0 })
			pool := newBundleRunner(1, 0)
			startWorker(t, mode, url, "w", pool, time.Second)
			f.give(bundleTask("t1"))
			waitUntil(t, "t1's result", 10*time.Second, func() bool { return f.result("t1") != nil })
			if n := f.fetchCount(); n != 1 {
				t.Fatalf("%d FETCHes for one task, want 1", n)
			}
			f.give(bundleTask("t2"))
			waitUntil(t, "t2's result", 10*time.Second, func() bool { return f.result("t2") != nil })
			if n := f.fetchCount(); n != 1 {
				t.Fatalf("%d FETCHes after a second task of the same bundle, want still 1", n)
			}
			for _, id := range []string{"t1", "t2"} {
				if r := f.result(id); r.Status != faastype.Completed {
					t.Errorf("%s: %+v", id, r)
				}
				if got, _ := pool.ran(id); !bytes.Equal(got, testZip) {
					t.Errorf("%s reached the pool with bundle data %q, want %q", id, got, testZip)
				}
			}
			// A task without a bundle fetches nothing and gets no bytes.
			plain := bundleTask("t3")
			plain.Bundle = ""
			f.give(plain)
			waitUntil(t, "t3's result", 10*time.Second, func() bool { return f.result("t3") != nil })
			if got, _ := pool.ran("t3"); len(got) != 0 || f.fetchCount() != 1 {
				t.Errorf("a task without a bundle: data %q, %d FETCHes", got, f.fetchCount())
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.badSeq) > 0 {
				t.Errorf("PULLs that lost track of their last WORK: %v", f.badSeq)
			}
		})
	}
}

// Tasks that want the same bundle at once share one fetch.
func TestBundleFetchSingleFlight(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			f, url := startFake(t, mode, func(m *wire.Message) (*wire.Message, time.Duration) {
				if mode == "push" {
					return bundleAnswer(m), 300 * time.Millisecond // held back: the others wait meanwhile
				}
				// Pull: the dispatcher answers PENDING while it reads.
				mu.Lock()
				defer mu.Unlock()
				if calls++; calls <= 15 {
					return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, Code: wire.BundlePending,
						RetryAfter: 20 * time.Millisecond}, 0
				}
				return bundleAnswer(m), 0
			})
			pool := newBundleRunner(3, 0)
			startWorker(t, mode, url, "w", pool, time.Second)
			f.give(bundleTask("a"), bundleTask("b"), bundleTask("c"))
			for _, id := range []string{"a", "b", "c"} {
				waitUntil(t, id+"'s result", 10*time.Second, func() bool { return f.result(id) != nil })
				if got, _ := pool.ran(id); !bytes.Equal(got, testZip) {
					t.Errorf("%s reached the pool with bundle data %q", id, got)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.badSeq) > 0 {
				t.Errorf("PULLs that lost track of their last WORK: %v", f.badSeq)
			}
			asked := map[string]bool{}
			for _, r := range f.fetches {
				asked[r.ID] = true
			}
			if len(asked) != 1 {
				t.Errorf("FETCHes for tasks %v, want one task's (one fetch for all)", asked)
			}
			if mode == "push" && len(f.fetches) != 1 {
				t.Errorf("%d FETCHes, want 1", len(f.fetches))
			}
		})
	}
}

// The answers without the bytes: MISSING and TOO_LARGE fail the task (it
// never reaches the pool); UNAVAILABLE, REFUSED and no answer at all hand
// it back.
func TestBundleNotGiven(t *testing.T) {
	for _, mode := range modes {
		for _, tc := range []struct {
			name string
			code int // -1: no answer
			text string
			kind faastype.ErrorKind // "" handed back
			want string             // in the failure's message
		}{
			{"missing", wire.BundleMissing, "", faastype.KindBadPayload, testHash + " is not in the store"},
			{"missing-said", wire.BundleMissing, "gone from the store", faastype.KindBadPayload, "gone from the store"},
			{"too-large", wire.BundleTooLarge, "does not fit in a 1000-byte message", faastype.KindPayloadTooLarge, "1000-byte"},
			{"unavailable", wire.BundleUnavailable, "redis is down", "", ""},
			{"refused", wire.BundleRefused, "not yours", "", ""},
			{"no-answer", -1, "", "", ""},
		} {
			t.Run(mode+"-"+tc.name, func(t *testing.T) {
				f, url := startFake(t, mode, func(m *wire.Message) (*wire.Message, time.Duration) {
					if tc.code < 0 {
						return nil, 0
					}
					return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, Code: tc.code, Text: tc.text}, 0
				})
				pool := newBundleRunner(1, 0)
				startWorker(t, mode, url, "w", pool, time.Second, func(c *worker.Config) { c.BundleTimeout = 300 * time.Millisecond })
				f.give(bundleTask("t"))
				if tc.kind != "" {
					waitUntil(t, "the result", 10*time.Second, func() bool { return f.result("t") != nil })
					r := f.result("t")
					if r.Status != faastype.Failed || r.Error == nil || r.Error.Kind != tc.kind || !strings.Contains(r.Error.Message, tc.want) {
						t.Fatalf("result %+v %+v, want %s with %q", r, r.Error, tc.kind, tc.want)
					}
					if f.wasReleased("t") {
						t.Error("the failed task was handed back too")
					}
				} else {
					waitUntil(t, "the release", 10*time.Second, func() bool { return f.wasReleased("t") })
					time.Sleep(100 * time.Millisecond)
					if r := f.result("t"); r != nil {
						t.Errorf("a handed-back task has a result: %+v", r)
					}
				}
				if _, ran := pool.ran("t"); ran {
					t.Error("the task ran without its bundle")
				}
			})
		}
	}
}

// Against the real dispatchers on a real redis-server: the bytes of the
// stored bundle reach the pool of every worker, and a task whose bundle the
// store does not have fails with BAD_PAYLOAD, once.
func TestBundleThroughTheDispatcher(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			ctx := context.Background()
			zip := bytes.Repeat([]byte("PK\x03\x04 bundle "), 20000) // 280 kB
			if _, err := st.PutBundle(ctx, "", testHash, zip); err != nil {
				t.Fatal(err)
			}
			url := testkit.FreeURL(t)
			startDispatcher(t, mode, st, url)
			a, b := newBundleRunner(2, 5*time.Millisecond), newBundleRunner(2, 5*time.Millisecond)
			startWorker(t, mode, url, "a", a, time.Second)
			startWorker(t, mode, url, "b", b, time.Second)
			var ids []string
			for i := 0; i < 30; i++ {
				id := uuid.NewString()
				ids = append(ids, id)
				if err := st.Enqueue(ctx, store.Task{ID: id, FunctionID: "f", FnPayload: "Zm4=", ParamPayload: "YXJncw==", Bundle: testHash}); err != nil {
					t.Fatal(err)
				}
			}
			gone := uuid.NewString()
			if err := st.Enqueue(ctx, store.Task{ID: gone, FunctionID: "g", FnPayload: "Zm4=", ParamPayload: "YXJncw==",
				Bundle: strings.Repeat("0", 64)}); err != nil {
				t.Fatal(err)
			}
			tasks := storetest.WaitFinal(t, st, append(ids, gone), 30*time.Second)
			for _, id := range ids {
				if tk := tasks[id]; tk.Status != faastype.Completed || tk.Attempts != 1 {
					t.Errorf("task %s: %s %+v, %d attempts", id, tk.Status, tk.Error, tk.Attempts)
				}
				got, ok := a.ran(id)
				if !ok {
					got, ok = b.ran(id)
				}
				if !ok || !bytes.Equal(got, zip) {
					t.Errorf("task %s reached a pool with %d bundle bytes, want %d", id, len(got), len(zip))
				}
			}
			if tk := tasks[gone]; tk.Status != faastype.Failed || tk.Error == nil || tk.Error.Kind != faastype.KindBadPayload ||
				!strings.Contains(tk.Error.Message, "not in the store") || tk.Attempts != 1 {
				t.Errorf("task of a missing bundle: %s %+v, %d attempts", tk.Status, tk.Error, tk.Attempts)
			}
		})
	}
}

// A task that waits for another task's fetch of its bundle asks again when
// that fetch is refused (a refusal is about the other task): the first
// task goes back, the second runs with the bytes.
func TestBundleWaiterAsksAgain(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			first, calls := "", 0
			f, url := startFake(t, mode, func(m *wire.Message) (*wire.Message, time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				if first == "" {
					first = m.Fetch.ID
				}
				if m.Fetch.ID != first {
					return bundleAnswer(m), 0
				}
				refused := &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, Code: wire.BundleRefused, Text: "not yours"}
				if mode == "push" {
					return refused, 300 * time.Millisecond
				}
				if calls++; calls <= 15 {
					return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, Code: wire.BundlePending,
						RetryAfter: 20 * time.Millisecond}, 0
				}
				return refused, 0
			})
			pool := newBundleRunner(2, 0)
			startWorker(t, mode, url, "w", pool, time.Second)
			f.give(bundleTask("a"), bundleTask("b"))
			waitUntil(t, "a result and a release", 10*time.Second, func() bool {
				return (f.result("a") != nil && f.wasReleased("b")) || (f.result("b") != nil && f.wasReleased("a"))
			})
			mu.Lock()
			lost := first
			mu.Unlock()
			won := map[string]string{"a": "b", "b": "a"}[lost]
			if got, _ := pool.ran(won); !bytes.Equal(got, testZip) {
				t.Errorf("%s reached the pool with %q", won, got)
			}
			if _, ran := pool.ran(lost); ran || f.result(lost) != nil || !f.wasReleased(lost) {
				t.Errorf("the refused task %s: ran %v, result %+v", lost, ran, f.result(lost))
			}
		})
	}
}
