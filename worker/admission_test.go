package worker_test

// Worker admission in process: workers without the dispatcher's secret get
// nothing, and a worker with a secret works for no dispatcher that cannot
// prove it (see wire/message.go).

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/testkit"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
	"github.com/wasmfaas/wasmfaas/store/storetest"
	"github.com/wasmfaas/wasmfaas/wire"
	"github.com/wasmfaas/wasmfaas/worker"
)

var otherSecret = []byte("a-different-secret-of-more-than-32-characters!")

// logBuf collects log output.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// waitLogged waits until the log holds substr.
func (l *logBuf) waitLogged(t *testing.T, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(l.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within %s; log:\n%s", substr, within, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A dispatcher with a secret: workers without it (none, or another one) get
// no task, while a worker with it runs them all, once each.
func TestAdmission(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			dlog := &logBuf{}
			startDispatcher(t, mode, st, url, func(c *dispatch.RemoteConfig) { c.Secret = testSecret; c.Logger = dlog.logger() })
			none, wrong := newEcho(2, 0), newEcho(2, 0)
			nlog, wlog := &logBuf{}, &logBuf{}
			startWorker(t, mode, url, "none", none, time.Second, func(c *worker.Config) { c.Logger = nlog.logger() })
			startWorker(t, mode, url, "wrong", wrong, time.Second, func(c *worker.Config) { c.Secret = otherSecret; c.Logger = wlog.logger() })
			nlog.waitLogged(t, "the dispatcher requires a worker secret and this worker has none", 10*time.Second)
			wlog.waitLogged(t, "the dispatcher refused this worker", 10*time.Second)
			dlog.waitLogged(t, "refused a worker that failed authentication", 10*time.Second)

			ids, args := enqueue(t, st, 30)
			time.Sleep(300 * time.Millisecond)
			good := newEcho(2, 10*time.Millisecond)
			startWorker(t, mode, url, "good", good, time.Second, func(c *worker.Config) { c.Secret = testSecret })
			tasks := storetest.WaitFinal(t, st, ids, 30*time.Second)
			check(t, ids, args, tasks, 1)
			for _, id := range ids {
				if w := tasks[id].Worker; !strings.HasPrefix(w, "good/") {
					t.Errorf("task %s ran on %s", id, w)
				}
			}
			if none.ran() != 0 || wrong.ran() != 0 || good.ran() != len(ids) {
				t.Errorf("runs: none %d, wrong %d, good %d", none.ran(), wrong.ran(), good.ran())
			}
			for _, l := range []*logBuf{dlog, nlog, wlog} {
				if s := l.String(); strings.Contains(s, string(testSecret)) || strings.Contains(s, string(otherSecret)) {
					t.Errorf("a secret was logged:\n%s", s)
				}
			}
		})
	}
}

// A worker with a secret refuses a dispatcher without one, and it never
// sees a task; a worker without one is served.
func TestWorkerRefusesOpenDispatcher(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			st := store.New(redistest.Start(t), store.Options{})
			url := testkit.FreeURL(t)
			startDispatcher(t, mode, st, url)
			careful := newEcho(2, 0)
			clog := &logBuf{}
			startWorker(t, mode, url, "careful", careful, time.Second, func(c *worker.Config) { c.Secret = testSecret; c.Logger = clog.logger() })
			ids, args := enqueue(t, st, 10)
			clog.waitLogged(t, "refusing the dispatcher: it has no worker secret", 10*time.Second)
			time.Sleep(300 * time.Millisecond)
			if careful.ran() != 0 {
				t.Fatalf("the worker with a secret ran %d tasks of an open dispatcher", careful.ran())
			}
			startWorker(t, mode, url, "open", newEcho(2, 0), time.Second)
			check(t, ids, args, storetest.WaitFinal(t, st, ids, 30*time.Second), 1)
			if careful.ran() != 0 {
				t.Fatalf("the worker with a secret ran %d tasks of an open dispatcher", careful.ran())
			}
		})
	}
}

// A rogue dispatcher (one that says it has a secret, answers anything, and
// seals with another key) cannot feed a worker with a secret a task.
func TestRogueDispatcher(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			url := testkit.FreeURL(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := wire.Options{Logger: testkit.Logger()}
			listen := wire.ListenRouter
			if mode == "pull" {
				listen = wire.ListenRep
			}
			sock, err := listen(ctx, url, o)
			if err != nil {
				t.Fatal(err)
			}
			var served sync.WaitGroup
			served.Add(1)
			go func() { defer served.Done(); rogue(mode, sock) }()
			defer served.Wait()
			defer sock.Close()

			victim := newEcho(2, 0)
			vlog := &logBuf{}
			startWorker(t, mode, url, "victim", victim, 100*time.Millisecond, func(c *worker.Config) { c.Secret = testSecret; c.Logger = vlog.logger() })
			vlog.waitLogged(t, "refusing the dispatcher: its answer failed authentication", 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			if victim.ran() != 0 {
				t.Fatalf("the worker ran %d tasks of a rogue dispatcher", victim.ran())
			}
		})
	}
}

// rogue plays a dispatcher that has the wrong secret but pretends.
func rogue(mode string, sock zmq4.Socket) {
	task := wire.Task{Task: faastype.Task{ID: "rogue-task", Isolation: faastype.Warm, Timeout: time.Second,
		Fn: []byte("fn"), Args: []byte("args")}, Fence: 1, Attempt: 1}
	chans := map[string]*wire.Channel{}
	for {
		msg, err := sock.Recv()
		if err != nil {
			return
		}
		var rid []byte
		frame := msg.Frames[len(msg.Frames)-1]
		if mode == "push" {
			rid = msg.Frames[0]
		}
		m, err := wire.Decode(frame)
		var replies [][]byte
		switch {
		case err != nil:
			replies = append(replies, (&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeMalformed}).Encode(nil))
		case m.Type == wire.MsgHello:
			id, nonce := wire.NewID16(), wire.NewNonce()
			chans[string(rid)] = wire.DispatcherChannel(otherSecret, m, id, nonce)
			chans[string(id[:])] = chans[string(rid)]
			replies = append(replies, (&wire.Message{Type: wire.MsgChallenge, Channel: id, Nonce: nonce, Secured: true}).Encode(nil))
		case m.Type == wire.MsgRegister:
			ch := chans[string(rid)]
			replies = append(replies, ch.Seal(&wire.Message{Type: wire.MsgWelcome, Incarnation: wire.ID16{1},
				Heartbeat: 50 * time.Millisecond, Misses: 4, Timeout: time.Second}))
			replies = append(replies, ch.Seal(&wire.Message{Type: wire.MsgTask, Tasks: []wire.Task{task}}))
		case m.Type == wire.MsgPull:
			ch := chans[string(m.Channel[:])]
			if ch == nil {
				replies = append(replies, (&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnknownSession}).Encode(nil))
				break
			}
			replies = append(replies, ch.SealAs(&wire.Message{Type: wire.MsgWork, Incarnation: wire.ID16{1}, WorkSeq: 1,
				Tasks: []wire.Task{task}}, m.Seq))
		default:
			if mode == "pull" {
				replies = append(replies, (&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected}).Encode(nil))
			}
		}
		for _, r := range replies {
			if mode == "push" {
				err = sock.Send(zmq4.NewMsgFrom(rid, r))
			} else {
				err = sock.Send(zmq4.NewMsg(r))
			}
			if err != nil {
				return
			}
		}
	}
}
