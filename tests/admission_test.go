package tests

// Worker admission with the real binaries (see wire/message.go): workers
// without the dispatcher's worker secret get nothing and post nothing,
// forged and replayed messages are refused, and a worker with a secret
// refuses a dispatcher that cannot prove it.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/wire"
)

var remoteModes = []string{"push", "pull"}

const wrongSecret = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func (c *cluster) addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

// rawSocket connects a plain zmq4 socket (no checks, no secret) of the
// mode's worker kind to addr.
func rawSocket(t *testing.T, mode, addr string) zmq4.Socket {
	t.Helper()
	var s zmq4.Socket
	if mode == "push" {
		s = zmq4.NewDealer(context.Background())
	} else {
		s = zmq4.NewReq(context.Background())
	}
	if err := s.Dial("tcp://" + addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange sends frame and returns the decoded answer, or nil if none came
// within d.
func exchange(t *testing.T, s zmq4.Socket, frame []byte, d time.Duration) *wire.Message {
	t.Helper()
	if err := s.Send(zmq4.NewMsg(frame)); err != nil {
		t.Fatal(err)
	}
	m, ok := recvWithin(s, d)
	if !ok {
		return nil
	}
	msg, err := wire.Decode(m.Frames[len(m.Frames)-1])
	if err != nil {
		t.Fatalf("undecodable answer: %v", err)
	}
	return msg
}

// handshake says HELLO as name on s and opens the channel the CHALLENGE
// offers, with key material secret (nil: the public one of open admission).
func handshake(t *testing.T, s zmq4.Socket, name string, secret []byte) *wire.Channel {
	t.Helper()
	hello := &wire.Message{Type: wire.MsgHello, Name: name, Session: wire.NewID16(), Nonce: wire.NewNonce()}
	ch := exchange(t, s, hello.Encode(nil), 5*time.Second)
	if ch == nil || ch.Type != wire.MsgChallenge || !ch.Secured {
		t.Fatalf("answer to HELLO: %+v", ch)
	}
	return wire.WorkerChannel(secret, hello, ch)
}

func wantError(t *testing.T, what string, m *wire.Message, code int) {
	t.Helper()
	if m == nil || m.Type != wire.MsgError || m.Code != code {
		t.Errorf("%s: answer %+v, want ERROR %d", what, m, code)
	}
}

// A dispatcher with a secret serves the workers that have it (from a file
// or from FAAS_WORKER_SECRET) and none of the others: they get no task and
// are never counted, while it keeps serving.
func TestWorkerAdmission(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode+"+secret")
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			good := c.worker("good", 2)
			// the secret in the environment, no secret, another secret
			secretFile := c.secretFile
			c.secretFile = ""
			env := c.workerTo(c.url(), []string{"FAAS_WORKER_SECRET=" + c.secret}, "env", 1)
			none := c.worker("none", 2)
			c.secretFile = writeSecret(t, wrongSecret)
			wrong := c.worker("wrong", 2)
			c.secretFile = secretFile
			d.waitLog(c.joined(), 2, 60*time.Second)
			none.waitLog("the dispatcher requires a worker secret and this worker has none", 1, 30*time.Second)
			wrong.waitLog("the dispatcher refused this worker", 1, 30*time.Second)
			d.waitLog("refused a worker that failed authentication", 1, 30*time.Second)

			xs := seq(20)
			fn, args := payloads(t, 0.1, xs)
			ids := c.enqueue(fn, args)
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			done.check(t, ids)
			per := map[string]int{}
			for _, id := range ids {
				task := tasks[id]
				per[strings.SplitN(task.Worker, "/", 2)[0]]++
				if task.Attempts != 1 {
					t.Errorf("task %s: %d attempts", id, task.Attempts)
				}
			}
			if per["good"] == 0 || per["env"] == 0 || per["good"]+per["env"] != len(ids) {
				t.Errorf("tasks per worker: %v", per)
			}
			if n := d.count(c.joined()); n != 2 {
				t.Errorf("%d workers admitted, want 2", n)
			}
			for _, p := range []*proc{d, good, env, none, wrong} {
				if !p.alive() {
					t.Errorf("%s exited", p.name)
				}
			}
			t.Logf("tasks per worker: %v", per)
		})
	}
}

func writeSecret(t *testing.T, s string) string { return secretFile(t, s) }

// A RESULT (push) or a PULL carrying a result (pull) for a task that is
// really running, forged with the wire encoder on a plain ZeroMQ socket
// without the secret, is not recorded: the task's result is the real
// worker's, from its one attempt.
func TestForgedResult(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode+"+secret")
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			c.worker("w1", 1)
			d.waitLog(c.joined(), 1, 60*time.Second)
			xs := []int{7}
			fn, args := payloads(t, 1.5, xs)
			ids := c.enqueue(fn, args)
			c.waitRunningOn("w1", ids, 30*time.Second)
			task, err := c.st.GetTask(context.Background(), ids[0])
			if err != nil {
				t.Fatal(err)
			}
			forged := []wire.Result{{ID: ids[0], Fence: task.Fence,
				Result: &faastype.Result{Status: faastype.Completed, Payload: []byte("\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00\x8c\x06FORGED\x94.")}}}
			forgedMsg := func() *wire.Message {
				if mode == "push" {
					return &wire.Message{Type: wire.MsgResult, Results: forged}
				}
				return &wire.Message{Type: wire.MsgPull, Free: 4, Results: forged}
			}

			// On no channel at all.
			s := rawSocket(t, mode, c.addr())
			wantError(t, "forged result on no channel", exchange(t, s, sealedForNobody(forgedMsg()), 5*time.Second), wire.ErrCodeUnknownSession)
			// Unsealed (as version 2 never sends it).
			if mode == "push" {
				if m := exchange(t, s, forgedMsg().Encode(nil), time.Second); m != nil {
					t.Errorf("answer to an unsealed RESULT: %+v", m)
				}
			} else {
				wantError(t, "unsealed PULL", exchange(t, rawSocket(t, mode, c.addr()), forgedMsg().Encode(nil), 5*time.Second), wire.ErrCodeMalformed)
			}
			// On a channel of its own, keyed without the secret (the public
			// key of open admission, or another secret), pretending to be the
			// real worker.
			for _, key := range [][]byte{nil, []byte(wrongSecret)} {
				s := rawSocket(t, mode, c.addr())
				ch := handshake(t, s, "w1", key)
				if mode == "push" {
					wantError(t, "forged registration", exchange(t, s, ch.Seal(&wire.Message{Type: wire.MsgRegister, Capacity: 4}), 5*time.Second),
						wire.ErrCodeUnauthorized)
					s.Send(zmq4.NewMsg(ch.Seal(forgedMsg())))
					s.Send(zmq4.NewMsg(ch.Seal(&wire.Message{Type: wire.MsgHeartbeat, Free: 4})))
					if m, ok := recvWithin(s, 2*time.Second); ok {
						msg, _ := wire.Decode(m.Frames[0])
						if msg == nil || msg.Type != wire.MsgError {
							t.Errorf("the forger got %+v", msg)
						}
					}
				} else {
					wantError(t, "forged PULL", exchange(t, s, ch.Seal(forgedMsg()), 5*time.Second), wire.ErrCodeUnauthorized)
					// The channel is gone after the failed proof.
					s2 := rawSocket(t, mode, c.addr())
					wantError(t, "second forged PULL", exchange(t, s2, ch.Seal(forgedMsg()), 5*time.Second), wire.ErrCodeUnknownSession)
				}
			}
			d.waitLog("refused a worker that failed authentication", 1, 10*time.Second)

			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			done.check(t, ids)
			got := tasks[ids[0]]
			// (A final task keeps no fence: attempts and worker say which
			// claim recorded it.)
			if got.Attempts != 1 || !strings.HasPrefix(got.Worker, "w1/") {
				t.Errorf("task: attempts %d, worker %s", got.Attempts, got.Worker)
			}
			if n := d.count(c.joined()); n != 1 {
				t.Errorf("%d workers admitted, want 1", n)
			}
		})
	}
}

// ---- a man in the middle ----

// mitm relays TCP connections to target and shows a hook every message
// frame the connecting side (a worker) sends after the ZMTP handshake;
// the hook may have the frame sent twice (a replay in the same stream).
type mitm struct {
	l      net.Listener
	target string
	hook   func(body []byte) (again bool)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startMITM(t *testing.T, target string, hook func([]byte) bool) *mitm {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{l: l, target: target, hook: hook}
	m.wg.Add(1)
	go m.serve()
	t.Cleanup(func() {
		l.Close()
		m.mu.Lock()
		for _, c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func (m *mitm) url() string { return "tcp://" + m.l.Addr().String() }

func (m *mitm) serve() {
	defer m.wg.Done()
	for {
		c, err := m.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", m.target)
		if err != nil {
			c.Close()
			continue
		}
		m.mu.Lock()
		m.conns = append(m.conns, c, s)
		m.mu.Unlock()
		m.wg.Add(2)
		go func() { defer m.wg.Done(); io.Copy(c, s); c.Close() }()
		go func() { defer m.wg.Done(); m.relay(c, s); s.Close() }()
	}
}

// relay copies a worker's ZMTP stream frame by frame.
func (m *mitm) relay(c, s net.Conn) {
	br := bufio.NewReader(c)
	greeting := make([]byte, 64)
	if _, err := io.ReadFull(br, greeting); err != nil {
		return
	}
	if _, err := s.Write(greeting); err != nil {
		return
	}
	for {
		hdr := make([]byte, 2, 9)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return
		}
		size := uint64(hdr[1])
		if hdr[0]&0x02 != 0 {
			hdr = hdr[:9]
			if _, err := io.ReadFull(br, hdr[2:]); err != nil {
				return
			}
			size = binary.BigEndian.Uint64(hdr[1:])
		}
		if size > 64<<20 {
			return
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		out := append(append([]byte(nil), hdr...), body...)
		if hdr[0]&0x04 == 0 && hdr[0]&0x01 == 0 && len(body) > 0 && m.hook(body) {
			out = append(out, out...)
		}
		if _, err := s.Write(out); err != nil {
			return
		}
	}
}

// Messages captured on the way from a worker are refused when sent again:
// in the same connection (push: each RESULT twice), on another connection
// (no channel there), or after a HELLO of its own (another channel); a
// replayed PULL gets no task and posts no result.
func TestReplay(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode+"+secret")
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			var mu sync.Mutex
			captured := map[wire.MsgType][][]byte{}
			proxy := startMITM(t, c.addr(), func(body []byte) bool {
				m, err := wire.Decode(body)
				if err != nil {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				if m.Type == wire.MsgPull && len(m.Results) == 0 && len(captured[m.Type]) > 0 {
					return false // keep the first PULL and those with results
				}
				if len(captured[m.Type]) < 100 {
					captured[m.Type] = append(captured[m.Type], append([]byte(nil), body...))
				}
				return m.Type == wire.MsgResult
			})
			w := c.workerTo(proxy.url(), nil, "w1", 2)
			d.waitLog(c.joined(), 1, 60*time.Second)
			xs := seq(6)
			fn, args := payloads(t, 0, xs)
			ids := c.enqueue(fn, args)
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			for _, id := range ids {
				if tasks[id].Attempts != 1 {
					t.Errorf("task %s: %d attempts", id, tasks[id].Attempts)
				}
			}
			mu.Lock()
			results, registers, pulls := captured[wire.MsgResult], captured[wire.MsgRegister], captured[wire.MsgPull]
			mu.Unlock()
			if mode == "push" {
				if len(results) == 0 || len(registers) == 0 {
					t.Fatalf("captured %d RESULTs, %d REGISTERs", len(results), len(registers))
				}
				// Every RESULT came twice in its stream: the second was
				// dropped for its sequence number.
				d.waitLog("replayed or reordered message", 1, 10*time.Second)
				if !hasLine(d.logs(), "dropped a message that failed authentication") {
					t.Error("the dispatcher did not log the dropped replay")
				}
				wantError(t, "a RESULT replayed on another connection", exchange(t, rawSocket(t, mode, c.addr()), results[0], 5*time.Second),
					wire.ErrCodeUnknownSession)
				// A REGISTER replayed after a HELLO of its own.
				s := rawSocket(t, mode, c.addr())
				handshake(t, s, "w1", nil)
				wantError(t, "a REGISTER replayed on a new channel", exchange(t, s, registers[0], 5*time.Second),
					wire.ErrCodeUnauthorized)
			} else {
				withResults := 0
				for _, p := range pulls {
					if m, _ := wire.Decode(p); len(m.Results) > 0 {
						withResults++
					}
				}
				if len(pulls) < 2 || withResults == 0 {
					t.Fatalf("captured %d PULLs, %d with results", len(pulls), withResults)
				}
				// With the worker gone and a task waiting, no replayed PULL
				// (asking for work, or carrying results) gets anything.
				w.kill()
				more := c.enqueue(fn, args[:1])
				for i, p := range pulls {
					wantError(t, fmt.Sprintf("replayed PULL %d", i), exchange(t, rawSocket(t, mode, c.addr()), p, 5*time.Second),
						wire.ErrCodeUnauthorized)
				}
				d.waitLog("refused a request that failed authentication", 1, 10*time.Second)
				time.Sleep(500 * time.Millisecond)
				if task, err := c.st.GetTask(context.Background(), more[0]); err != nil || task.Status != faastype.Queued {
					t.Errorf("the task enqueued after the worker left: %s %v", task.Status, err)
				}
			}
			done.check(t, ids)
		})
	}
}

// ---- dispatchers a worker must refuse ----

// A worker with a secret refuses a dispatcher without one; it never
// registers and the tasks wait for a worker the dispatcher can have.
func TestWorkerRefusesDispatcherWithoutSecret(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			d := c.dispatcher("d1")
			c.secretFile = secretFile(t, testSecret)
			w := c.worker("careful", 2, "--log-level", "debug")
			c.secretFile = ""
			w.waitLog("refusing the dispatcher: it has no worker secret", 1, 30*time.Second)
			xs := seq(3)
			fn, args := payloads(t, 0, xs)
			ids := c.enqueue(fn, args)
			time.Sleep(1500 * time.Millisecond)
			for _, id := range ids {
				if task, _ := c.st.GetTask(context.Background(), id); task.Status != faastype.Queued {
					t.Errorf("task %s is %s", id, task.Status)
				}
			}
			if n := d.count(c.joined()); n != 0 || w.count("task started") != 0 {
				t.Errorf("admitted %d, tasks started %d", n, w.count("task started"))
			}
			c.worker("open", 2)
			c.checkResults(ids, xs, c.waitFinal(ids, 60*time.Second))
			if w.count("task started") != 0 {
				t.Error("the worker with a secret started a task")
			}
		})
	}
}

// A rogue dispatcher that says it has a secret and seals with another key
// cannot feed a worker a task; a dispatcher of wire version 1 is a clear
// error.
func TestWorkerRefusesRogueDispatcher(t *testing.T) {
	for _, mode := range remoteModes {
		for _, kind := range []string{"rogue", "v1"} {
			t.Run(mode+"-"+kind, func(t *testing.T) {
				needImage(t)
				c := &cluster{t: t, mode: mode, port: freePort(t), heartbeat: 200 * time.Millisecond, timeout: 3 * time.Second,
					drain: time.Second, misses: 10, secretFile: secretFile(t, testSecret)}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var sock zmq4.Socket
				if mode == "push" {
					sock = zmq4.NewRouter(ctx)
				} else {
					sock = zmq4.NewRep(ctx)
				}
				if err := sock.Listen("tcp://" + c.addr()); err != nil {
					t.Fatal(err)
				}
				var served sync.WaitGroup
				served.Add(1)
				go func() { defer served.Done(); fakeDispatcher(mode, kind, sock) }()
				defer served.Wait()
				defer sock.Close()
				w := c.worker("victim", 2, "--log-level", "debug")
				if kind == "rogue" {
					w.waitLog("refusing the dispatcher: its answer failed authentication", 1, 30*time.Second)
				} else {
					w.waitLog("the dispatcher speaks wire version 1 and this worker version "+strconv.Itoa(int(wire.WireVersion)), 1, 30*time.Second)
				}
				time.Sleep(500 * time.Millisecond)
				if n := w.count("task started"); n != 0 {
					t.Errorf("the worker started %d tasks", n)
				}
				if !w.alive() {
					t.Error("the worker exited")
				}
			})
		}
	}
}

// fakeDispatcher answers workers as a rogue dispatcher (kind "rogue": it
// has another secret but says it has one, welcomes anyone and sends
// tasks) or as one of wire version 1 (kind "v1": every frame of this
// version is an ERROR to it).
func fakeDispatcher(mode, kind string, sock zmq4.Socket) {
	task := wire.Task{Task: faastype.Task{ID: "rogue-task", Isolation: faastype.Warm, Timeout: time.Second,
		Fn: []byte("fn"), Args: []byte("args")}, Fence: 1, Attempt: 1}
	chans := map[string]*wire.Channel{}
	for {
		msg, err := sock.Recv()
		if err != nil {
			return
		}
		var rid []byte
		if mode == "push" {
			rid = msg.Frames[0]
		}
		var replies [][]byte
		m, err := wire.Decode(msg.Frames[len(msg.Frames)-1])
		switch {
		case kind == "v1":
			text := "wire: unsupported version 2 (this side speaks 1)"
			replies = append(replies, append([]byte{1, byte(wire.MsgError), 1, byte(len(text))}, text...))
		case err != nil:
		case m.Type == wire.MsgHello:
			id, nonce := wire.NewID16(), wire.NewNonce()
			ch := wire.DispatcherChannel([]byte(wrongSecret), m, id, nonce)
			chans[string(rid)], chans[string(id[:])] = ch, ch
			replies = append(replies, (&wire.Message{Type: wire.MsgChallenge, Channel: id, Nonce: nonce, Secured: true}).Encode(nil))
		case m.Type == wire.MsgRegister && chans[string(rid)] != nil:
			ch := chans[string(rid)]
			replies = append(replies, ch.Seal(&wire.Message{Type: wire.MsgWelcome, Incarnation: wire.ID16{1},
				Heartbeat: 200 * time.Millisecond, Misses: 10, Timeout: time.Second}))
			replies = append(replies, ch.Seal(&wire.Message{Type: wire.MsgTask, Tasks: []wire.Task{task}}))
		case m.Type == wire.MsgPull && chans[string(m.Channel[:])] != nil:
			replies = append(replies, chans[string(m.Channel[:])].SealAs(&wire.Message{Type: wire.MsgWork,
				Incarnation: wire.ID16{1}, WorkSeq: 1, Tasks: []wire.Task{task}}, m.Seq))
		}
		if mode == "pull" && len(replies) == 0 {
			replies = append(replies, (&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected}).Encode(nil))
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

// ---- configuration ----

// Secrets that are too weak, missing or given twice stop a process at
// start with a clear error; a dispatcher open to the network without one
// says so.
func TestWorkerSecretConfig(t *testing.T) {
	c := newCluster(t, "push")
	dir := t.TempDir()
	weak := filepath.Join(dir, "weak")
	if err := os.WriteFile(weak, []byte(strings.Repeat("ab", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	good := secretFile(t, testSecret)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"short env", []string{"FAAS_WORKER_SECRET=hunter2"}, nil, "FAAS_WORKER_SECRET: the worker secret is too short"},
		{"weak file", nil, []string{"--worker-secret-file", weak}, "short pattern repeated"},
		{"missing file", nil, []string{"--worker-secret-file", filepath.Join(dir, "nope")}, "no such file"},
		{"both", []string{"FAAS_WORKER_SECRET=" + testSecret}, []string{"--worker-secret-file", good}, "use one"},
		{"short hex", nil, []string{"--worker-secret-file", secretFile(t, testSecret[:40])}, "too short: 40 hex digits hold 20 bytes"},
	} {
		for _, cmd := range []string{"push-worker", "pull-worker", "dispatcher"} {
			args := []string{cmd, "1", c.url()}
			if cmd == "dispatcher" {
				args = []string{cmd, "-m", "pull", "-p", strconv.Itoa(c.port), "--bind", "127.0.0.1", "--redis", c.redisURL}
			}
			p := startExeEnv(t, cmd+"-"+tc.name, tc.env, faasBin, append(args, tc.args...)...)
			if !p.exited(20 * time.Second) {
				t.Fatalf("%s %s: still running", cmd, tc.name)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.logs(), tc.want) {
				t.Errorf("%s %s: exit %d, output:\n%s", cmd, tc.name, code, p.logs())
			}
			if strings.Contains(p.logs(), testSecret[:16]) {
				t.Errorf("%s %s: the secret is in the output", cmd, tc.name)
			}
		}
	}

	// Listening on every address without a secret: a warning; on loopback,
	// or with a secret, none.
	for _, tc := range []struct {
		bind   string
		secret bool
		warn   bool
	}{{"0.0.0.0", false, true}, {"127.0.0.1", false, false}, {"0.0.0.0", true, false}} {
		args := []string{"dispatcher", "-m", "push", "-p", strconv.Itoa(freePort(t)), "--bind", tc.bind, "--redis", c.redisURL}
		if tc.secret {
			args = append(args, "--worker-secret-file", good)
		}
		d := startProc(t, "d-"+tc.bind, args...)
		d.waitLog("dispatcher ready", 1, 30*time.Second)
		if got := d.count("no worker secret: any host that reaches this port can join"); (got > 0) != tc.warn {
			t.Errorf("bind %s, secret %v: warned %d times", tc.bind, tc.secret, got)
		}
		if tc.secret && d.count("workers must prove they hold the worker secret") == 0 {
			t.Errorf("bind %s with a secret: not said", tc.bind)
		}
		d.kill()
	}
}
