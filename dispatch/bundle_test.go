package dispatch

// The dispatcher's side of bundles in push and pull mode, against a fake
// worker that speaks the wire protocol: tasks name their bundle and never
// carry its bytes; a FETCH for a task the worker does not hold (or another
// fence, or another bundle) is refused and changes nothing else; a FETCH
// for one it holds gets the store's bytes, or MISSING when the store has
// none; and in pull mode a FETCH between PULLs leaves the lane's WORK
// bookkeeping alone.

import (
	"context"
	"errors"
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
)

const (
	storedHash  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	missingHash = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

var storedZip = []byte("PK\x03\x04 the stored bundle \x00\xff")

// bundleSetup stores a bundle and queues a task of it and a task of a
// bundle the store does not have, and starts a dispatcher in mode.
func bundleSetup(t *testing.T, mode string) (st *store.Store, url, withBundle, without string) {
	st = store.New(redistest.Start(t), store.Options{})
	ctx := context.Background()
	if _, err := st.PutBundle(ctx, "", storedHash, storedZip); err != nil {
		t.Fatal(err)
	}
	withBundle, without = uuid.NewString(), uuid.NewString()
	for id, hash := range map[string]string{withBundle: storedHash, without: missingHash} {
		if err := st.Enqueue(ctx, store.Task{ID: id, FunctionID: "f", FnPayload: "Zm4=", ParamPayload: "YXJncw==", Bundle: hash}); err != nil {
			t.Fatal(err)
		}
	}
	url = testkit.FreeURL(t)
	cfg := RemoteConfig{
		Config:    Config{Store: st, Name: "d", Lease: 2 * time.Second, Drain: 100 * time.Millisecond, Poll: 100 * time.Millisecond, Logger: testkit.Logger()},
		Listen:    url,
		Heartbeat: 200 * time.Millisecond,
		Misses:    50,
		Limits:    faastype.Limits{Timeout: 20 * time.Second},
	}
	run := RunPush
	if mode == "pull" {
		run = RunPull
	}
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(rctx, cfg); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return st, url, withBundle, without
}

// fakeWorker is one connection (push) or lane socket (pull) of a worker.
type fakeWorker struct {
	t    *testing.T
	mode string
	sock zmq4.Socket
	ch   *wire.Channel
	msgs chan *wire.Message // push: what the dispatcher sends
}

func dialFake(t *testing.T, mode, url string) *fakeWorker {
	t.Helper()
	dial := wire.DialDealer
	if mode == "pull" {
		dial = wire.DialReq
	}
	var sock zmq4.Socket
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if sock, err = dial(context.Background(), url, wire.Options{Logger: testkit.Logger()}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { sock.Close() })
	w := &fakeWorker{t: t, mode: mode, sock: sock, msgs: make(chan *wire.Message, 64)}
	hello := &wire.Message{Type: wire.MsgHello, Name: "fw", Session: wire.NewID16(), Nonce: wire.NewNonce()}
	if err := sock.Send(zmq4.NewMsg(hello.Encode(nil))); err != nil {
		t.Fatal(err)
	}
	challenge := w.recvFrame()
	if challenge.Type != wire.MsgChallenge {
		t.Fatalf("answer to HELLO: %s", challenge.Type)
	}
	w.ch = wire.WorkerChannel(nil, hello, challenge)
	if mode == "push" {
		go func() {
			for {
				m, err := w.recvRaw()
				if err != nil {
					close(w.msgs)
					return
				}
				if w.ch.Open(m) == nil {
					w.msgs <- m
				}
			}
		}()
	}
	return w
}

func (w *fakeWorker) recvRaw() (*wire.Message, error) {
	msg, err := w.sock.Recv()
	if err != nil {
		return nil, err
	}
	if len(msg.Frames) != 1 {
		return nil, fmt.Errorf("%d frames", len(msg.Frames))
	}
	return wire.Decode(msg.Frames[0])
}

func (w *fakeWorker) recvFrame() *wire.Message {
	w.t.Helper()
	m, err := w.recvRaw()
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// push: send seals and sends m; next waits for a message of type typ,
// skipping others (heartbeats, acknowledgements).
func (w *fakeWorker) send(m *wire.Message) uint64 {
	w.t.Helper()
	if err := w.sock.Send(zmq4.NewMsg(w.ch.Seal(m))); err != nil {
		w.t.Fatal(err)
	}
	return m.Seq
}

func (w *fakeWorker) next(typ wire.MsgType) *wire.Message {
	w.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				w.t.Fatalf("connection closed while waiting for %s", typ)
			}
			if m.Type == typ {
				return m
			}
		case <-timeout:
			w.t.Fatalf("no %s within 10s", typ)
		}
	}
}

// pull: ask sends a request and returns its verified reply.
func (w *fakeWorker) ask(m *wire.Message) *wire.Message {
	w.t.Helper()
	seq := w.send(m)
	r := w.recvFrame()
	if err := w.ch.OpenReply(r, seq); err != nil {
		w.t.Fatalf("reply to %s: %v (%+v)", m.Type, err, r)
	}
	return r
}

// fetch asks for the bundle of ref and returns the final BUNDLE answer (in
// pull mode, asking again while the dispatcher says PENDING).
func (w *fakeWorker) fetch(ref wire.Ref, hash string) *wire.Message {
	w.t.Helper()
	req := &wire.Message{Type: wire.MsgFetch, Fetch: ref, Bundle: hash}
	if w.mode == "push" {
		w.send(req)
		m := w.next(wire.MsgBundle)
		if m.Fetch != ref || m.Bundle != hash {
			w.t.Fatalf("BUNDLE for %+v %s, asked for %+v %s", m.Fetch, m.Bundle, ref, hash)
		}
		return m
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		m := w.ask(&wire.Message{Type: wire.MsgFetch, Fetch: ref, Bundle: hash})
		if m.Type != wire.MsgBundle || m.Fetch != ref || m.Bundle != hash {
			w.t.Fatalf("answer to FETCH: %+v", m)
		}
		if m.Code != wire.BundlePending {
			return m
		}
		if m.RetryAfter <= 0 || m.RetryAfter > time.Second {
			w.t.Fatalf("PENDING with retry_ms %s", m.RetryAfter)
		}
		time.Sleep(m.RetryAfter)
	}
	w.t.Fatal("still PENDING after 10s")
	return nil
}

func TestFetchBundle(t *testing.T) {
	for _, mode := range []string{"push", "pull"} {
		t.Run(mode, func(t *testing.T) {
			st, url, withBundle, without := bundleSetup(t, mode)
			w := dialFake(t, mode, url)

			// Get both tasks.
			got := map[string]wire.Task{}
			var workSeq uint64
			var inc wire.ID16
			if mode == "push" {
				w.send(&wire.Message{Type: wire.MsgRegister, Capacity: 2})
				w.next(wire.MsgWelcome)
				for len(got) < 2 {
					m := w.next(wire.MsgTask)
					got[m.Tasks[0].ID] = m.Tasks[0]
				}
			} else {
				for deadline := time.Now().Add(10 * time.Second); len(got) < 2; {
					if time.Now().After(deadline) {
						t.Fatalf("got %d tasks", len(got))
					}
					var held []wire.Held
					for _, tk := range got {
						held = append(held, wire.Held{ID: tk.ID, Fence: tk.Fence})
					}
					m := w.ask(&wire.Message{Type: wire.MsgPull, Incarnation: inc, GotSeq: workSeq, Free: 2 - len(got), Held: held})
					if m.Type != wire.MsgWork {
						t.Fatalf("answer to PULL: %+v", m)
					}
					inc, workSeq = m.Incarnation, m.WorkSeq
					for _, tk := range m.Tasks {
						got[tk.ID] = tk
					}
				}
			}
			tk, other := got[withBundle], got[without]
			if tk.Bundle != storedHash || other.Bundle != missingHash {
				t.Fatalf("tasks name bundles %q and %q", tk.Bundle, other.Bundle)
			}
			if len(tk.BundleData) != 0 || len(other.BundleData) != 0 {
				t.Fatal("the dispatcher sent a bundle's bytes with a task")
			}
			ref := wire.Ref{ID: tk.ID, Fence: tk.Fence}

			// Refused: a task it does not hold, another fence, another bundle.
			for _, c := range []struct {
				ref  wire.Ref
				hash string
			}{
				{wire.Ref{ID: uuid.NewString(), Fence: 1}, storedHash},
				{wire.Ref{ID: tk.ID, Fence: tk.Fence + 1}, storedHash},
				{ref, missingHash},
			} {
				m := w.fetch(c.ref, c.hash)
				if m.Code != wire.BundleRefused || m.Text == "" || len(m.BundleData) != 0 {
					t.Errorf("FETCH %+v %s: code %d %q, %d bytes; want REFUSED", c.ref, c.hash, m.Code, m.Text, len(m.BundleData))
				}
			}
			// Held: the store's bytes; a bundle the store does not have:
			// MISSING.
			if m := w.fetch(ref, storedHash); m.Code != wire.BundleOK || string(m.BundleData) != string(storedZip) {
				t.Errorf("FETCH of a held task's bundle: code %d %q, data %q", m.Code, m.Text, m.BundleData)
			}
			m := w.fetch(wire.Ref{ID: other.ID, Fence: other.Fence}, missingHash)
			if m.Code != wire.BundleMissing || !strings.Contains(m.Text, "not in the store") || len(m.BundleData) != 0 {
				t.Errorf("FETCH of a missing bundle: code %d %q", m.Code, m.Text)
			}

			if mode == "pull" {
				// The FETCHes were not PULLs: the lane's last WORK is still
				// the one to confirm, so a PULL naming it (holding nothing)
				// loses no task.
				m := w.ask(&wire.Message{Type: wire.MsgPull, Incarnation: inc, GotSeq: workSeq})
				if m.Type != wire.MsgWork || len(m.Cancels) != 0 || len(m.Tasks) != 0 {
					t.Fatalf("answer to PULL: %+v", m)
				}
				inc, workSeq = m.Incarnation, m.WorkSeq
			}
			time.Sleep(200 * time.Millisecond)
			for _, id := range []string{withBundle, without} {
				if task, err := st.GetTask(context.Background(), id); err != nil || task.Status != faastype.Running {
					t.Fatalf("task %s after the FETCHes: %s %v (want still RUNNING)", id, task.Status, err)
				}
			}

			// The results are recorded as usual.
			results := []wire.Result{
				{ID: tk.ID, Fence: tk.Fence, Result: &faastype.Result{Status: faastype.Completed, Payload: []byte("ok")}},
				{ID: other.ID, Fence: other.Fence, Result: NoBundle(missingHash)},
			}
			if mode == "push" {
				for _, r := range results {
					w.send(&wire.Message{Type: wire.MsgResult, Results: []wire.Result{r}})
				}
			} else {
				w.ask(&wire.Message{Type: wire.MsgPull, Incarnation: inc, GotSeq: workSeq, Results: results})
			}
			final := storetest.WaitFinal(t, st, []string{withBundle, without}, 10*time.Second)
			if f := final[withBundle]; f.Status != faastype.Completed || f.Attempts != 1 {
				t.Errorf("task with a bundle: %s, %d attempts", f.Status, f.Attempts)
			}
			if f := final[without]; f.Status != faastype.Failed || f.Error == nil || f.Error.Kind != faastype.KindBadPayload {
				t.Errorf("task without its bundle: %s %+v", f.Status, f.Error)
			}
		})
	}
}

func TestBundleReply(t *testing.T) {
	ref := wire.Ref{ID: "t", Fence: 3}
	for _, c := range []struct {
		name   string
		data   []byte
		err    error
		maxMsg int
		code   int
		text   string
	}{
		{"ok", []byte("zip"), nil, 0, wire.BundleOK, ""},
		{"ok within the worker's limit", make([]byte, 1000), nil, 8000, wire.BundleOK, ""},
		{"too large for the worker", make([]byte, 10000), nil, 8000, wire.BundleTooLarge, "does not fit in a 8000-byte message"},
		{"missing", nil, fmt.Errorf("bundle x: %w", ErrNoBundle), 0, wire.BundleMissing, "not in the store"},
		{"store away", nil, errors.New("dial tcp: connection refused"), 0, wire.BundleUnavailable, "connection refused"},
	} {
		m := bundleReply(ref, storedHash, c.data, c.err, c.maxMsg)
		if m.Type != wire.MsgBundle || m.Fetch != ref || m.Bundle != storedHash || m.Code != c.code || !strings.Contains(m.Text, c.text) {
			t.Errorf("%s: %+v", c.name, m)
		}
		if (c.code == wire.BundleOK) != (len(m.BundleData) > 0) {
			t.Errorf("%s: %d bytes with code %d", c.name, len(m.BundleData), m.Code)
		}
	}
}

// A task's wire form never carries its bundle's bytes, and they do not
// count against the worker's message size.
func TestWireTaskWithoutBundleData(t *testing.T) {
	cl := store.Claim{TaskID: "t", FunctionID: "f", FnPayload: "Zm4=", ParamPayload: "YXJncw==", Fence: 2, Bundle: storedHash}
	wt, bad := wireTask(cl, time.Second, 4096)
	if bad != nil || wt.Bundle != storedHash || wt.BundleData != nil {
		t.Fatalf("wireTask = %+v, %+v", wt, bad)
	}
}
