package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/internal/ratelog"
	"github.com/wasmfaas/wasmfaas/wire"
)

// RunPush is a push worker: it serves the dispatcher at cfg.URL with pool
// until ctx ends and its tasks are finished or handed back.
func RunPush(ctx context.Context, cfg Config, pool Runner) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	w := &pushWorker{cfg: cfg, session: wire.NewID16()}
	w.log = cfg.Logger.With("mode", "push", "worker", cfg.Name)
	w.errs = newErrLog(w.log)
	w.drops = ratelog.New(w.log, 10*time.Second)
	w.ts = newTasks(pool, w.log, cfg.Wire.MaxMessage, newBundles(cfg))
	return w.run(ctx)
}

type pushWorker struct {
	cfg     Config
	log     *slog.Logger
	session wire.ID16
	ts      *tasks
	gen     int
	ch      *wire.Channel // of the current connection, once challenged
	errs    *errLog
	drops   *ratelog.Logger

	stopping   bool
	drainEnd   time.Time // when running tasks are stopped
	giveUpAt   time.Time // when the worker leaves even without acknowledgements
	drainTimer <-chan time.Time
	released   []wire.Ref
}

type recvd struct {
	m   *wire.Message
	err error
}

func (w *pushWorker) run(ctx context.Context) error {
	w.log.Info("push worker starting", "dispatcher", w.cfg.URL, "sandboxes", w.ts.pool.Size(), "session", w.session.String())
	backoff := 100 * time.Millisecond
	for {
		if w.finished() {
			break
		}
		sctx, cancel := context.WithCancel(context.Background())
		if w.stopping {
			sctx, cancel = context.WithDeadline(context.Background(), w.giveUpAt)
		}
		sock, err := wire.DialDealer(sctx, w.cfg.URL, w.cfg.Wire)
		if err != nil {
			cancel()
			if w.stopping && time.Now().After(w.giveUpAt) {
				break
			}
			w.log.Debug("dispatcher not reachable; retrying", "err", err, "retry_in", backoff)
			if !w.wait(ctx, backoff) {
				continue
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		w.gen++
		welcomed, err := w.session1(ctx, sock)
		sock.Close()
		cancel()
		if welcomed {
			backoff = 100 * time.Millisecond
		}
		if err == errStopped {
			break
		}
		if err != nil {
			w.errs.report(err)
		}
		if !w.wait(ctx, backoff) {
			continue
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	// Whatever is left cannot be delivered: stop it; its lease expires.
	w.ts.stopAll()
	w.ts.wg.Wait()
	w.log.Info("push worker stopped", "unacknowledged", len(w.ts.unacked))
	return nil
}

// finished reports whether a stopping worker is done.
func (w *pushWorker) finished() bool {
	if !w.stopping {
		return false
	}
	return (len(w.ts.running) == 0 && len(w.ts.unacked) == 0 && len(w.released) == 0) || time.Now().After(w.giveUpAt)
}

// wait sleeps between connection attempts while still collecting finished
// tasks and noticing shutdown; false means ctx just ended.
func (w *pushWorker) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case f := <-w.ts.done:
			w.finishTask(f, nil)
		case r := <-w.ts.fetches:
			r.fail("not connected to the dispatcher")
		case <-w.drainTimer:
			w.drainTimer = nil
			w.ts.stopAll()
		case <-ctxDone(ctx, w.stopping):
			w.beginStop()
			return false
		}
	}
}

func ctxDone(ctx context.Context, stopping bool) <-chan struct{} {
	if stopping {
		return nil
	}
	return ctx.Done()
}

func (w *pushWorker) beginStop() {
	if w.stopping {
		return
	}
	w.stopping = true
	w.drainEnd = time.Now().Add(w.cfg.Drain)
	w.giveUpAt = w.drainEnd.Add(max(2*time.Second, time.Duration(w.cfg.Misses)*w.cfg.Heartbeat))
	w.drainTimer = time.After(w.cfg.Drain)
	w.log.Info("push worker stopping", "running", len(w.ts.running), "drain", w.cfg.Drain)
}

// finishTask handles a task that ended; sock is nil while disconnected.
func (w *pushWorker) finishTask(f finished, sock zmq4.Socket) {
	res, release := w.ts.finish(f)
	if release {
		w.released = append(w.released, f.ref)
	}
	if sock == nil {
		return
	}
	if res != nil {
		w.sendResult(sock, res)
	}
	if len(w.released) > 0 {
		w.sendMsg(sock, &wire.Message{Type: wire.MsgRelease, Released: w.released})
		w.released = nil
	}
}

func (w *pushWorker) sendResult(sock zmq4.Socket, res *result) {
	res.sent = w.gen
	w.sendMsg(sock, &wire.Message{Type: wire.MsgResult, Results: []wire.Result{w.ts.fit(res)}})
}

// sendMsg sends m, sealed on the connection's channel (HELLO goes open).
func (w *pushWorker) sendMsg(sock zmq4.Socket, m *wire.Message) {
	var frame []byte
	if m.Type == wire.MsgHello {
		frame = m.Encode(nil)
	} else if w.ch != nil {
		frame = w.ch.Seal(m)
	} else {
		return // not challenged yet: nothing else may go
	}
	if err := sock.Send(zmq4.NewMsg(frame)); err != nil {
		w.log.Debug("send failed", "type", m.Type, "err", err)
	}
}

// session1 serves one connection until it is lost (error), or the worker is
// done (errStopped). welcomed says whether the dispatcher answered.
func (w *pushWorker) session1(ctx context.Context, sock zmq4.Socket) (welcomed bool, err error) {
	msgs := make(chan recvd, 64)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			m, err := sock.Recv()
			var r recvd
			if err != nil {
				r.err = err
			} else if len(m.Frames) != 1 {
				r.err = fmt.Errorf("a %d-frame message", len(m.Frames))
			} else if r.m, r.err = decodeFrame(m.Frames[0]); r.err != nil {
				var ae *admissionError
				if !errors.As(r.err, &ae) {
					// A frame we cannot read is dropped, not fatal.
					w.drops.Warn("malformed", "dropped a malformed message from the dispatcher", "err", r.err)
					continue
				}
			}
			select {
			case msgs <- r:
			case <-quit:
				return
			}
			if r.err != nil {
				return
			}
		}
	}()

	// HELLO, then REGISTER on the channel the CHALLENGE opens.
	w.ch = nil
	hello := &wire.Message{Type: wire.MsgHello, Name: w.cfg.Name, Session: w.session, Nonce: wire.NewNonce()}
	w.sendMsg(sock, hello)
	interval := w.cfg.Heartbeat
	silent := time.Duration(w.cfg.Misses) * interval
	lastHeard := time.Now()
	hb := time.NewTicker(interval)
	defer hb.Stop()
	var inc wire.ID16
	// FETCHes sent on this connection and not answered yet, by task; an
	// answer cannot come on another connection.
	fetching := map[wire.Ref]*fetchReq{}
	defer func() {
		for _, r := range fetching {
			r.fail("lost the connection to the dispatcher")
		}
	}()

	for {
		if w.stopping && len(w.ts.running) == 0 && len(w.ts.unacked) == 0 && len(w.released) == 0 {
			if welcomed {
				w.sendMsg(sock, &wire.Message{Type: wire.MsgBye})
			}
			return welcomed, errStopped
		}
		if w.stopping && time.Now().After(w.giveUpAt) {
			if welcomed {
				w.sendMsg(sock, &wire.Message{Type: wire.MsgBye})
			}
			return welcomed, errStopped
		}
		select {
		case r := <-msgs:
			if r.err != nil {
				return welcomed, fmt.Errorf("connection: %w", r.err)
			}
			if gap := time.Since(lastHeard); welcomed && gap > silent {
				// This process was not scheduled (stopped, swapped out)
				// for longer than the dispatcher waits for a heartbeat: it
				// has declared this session dead and given its tasks to
				// others, so what was sent before is stale.
				return welcomed, fmt.Errorf("no word from the dispatcher for %s", gap.Round(time.Millisecond))
			}
			m := r.m
			if !m.Sealed {
				switch {
				case m.Type == wire.MsgChallenge && w.ch == nil:
					if err := checkChallenge(w.cfg.Secret, m); err != nil {
						return false, err
					}
					w.ch = wire.WorkerChannel(w.cfg.Secret, hello, m)
					w.sendMsg(sock, &wire.Message{Type: wire.MsgRegister, Capacity: w.ts.pool.Size(), Held: w.ts.held(),
						MaxMessage: w.cfg.Wire.MaxMessage, Walls: w.cfg.Walls})
				case m.Type == wire.MsgError && !welcomed:
					return false, refusal(m)
				default:
					w.drops.Warn("open", "dropped an unauthenticated message from the dispatcher", "type", m.Type)
				}
				continue
			}
			if w.ch == nil {
				w.drops.Warn("open", "dropped a message from the dispatcher before its CHALLENGE", "type", m.Type)
				continue
			}
			if err := w.ch.Open(m); err != nil {
				if !welcomed {
					return false, errRefusedDispatcher
				}
				w.drops.Warn("auth", "dropped a message from the dispatcher that failed authentication (forged, replayed or corrupted)",
					"type", m.Type, "err", err)
				continue
			}
			lastHeard = time.Now()
			if !welcomed && m.Type != wire.MsgWelcome && m.Type != wire.MsgError && m.Type != wire.MsgBye {
				continue // left over from before the registration
			}
			switch m.Type {
			case wire.MsgWelcome:
				if welcomed {
					continue
				}
				welcomed, inc = true, m.Incarnation
				w.ts.limit(m.MaxMessage)
				if m.Heartbeat > 0 && m.Heartbeat < interval {
					interval = m.Heartbeat
					hb.Reset(interval)
				}
				if m.Heartbeat > 0 && m.Misses > 0 {
					silent = time.Duration(m.Misses) * max(m.Heartbeat, interval)
				}
				w.log.Info("registered with the dispatcher", "dispatcher", inc.String(), "holds", len(w.ts.running)+len(w.ts.unacked))
				for _, u := range w.ts.unacked {
					w.sendResult(sock, u)
				}
				if len(w.released) > 0 {
					w.sendMsg(sock, &wire.Message{Type: wire.MsgRelease, Released: w.released})
					w.released = nil
				}
				if w.stopping {
					w.sendMsg(sock, &wire.Message{Type: wire.MsgDrain})
				}
			case wire.MsgTask:
				t := m.Tasks[0]
				if w.stopping {
					w.sendMsg(sock, &wire.Message{Type: wire.MsgRelease, Released: []wire.Ref{{ID: t.ID, Fence: t.Fence}}})
					continue
				}
				w.ts.start(t)
			case wire.MsgAck:
				for _, a := range m.Acks {
					w.ts.ack(a)
				}
			case wire.MsgCancel:
				for _, ref := range m.Cancels {
					w.ts.cancel(ref)
				}
			case wire.MsgBundle:
				a := answerOf(m)
				if a.code == wire.BundleOK && len(a.data) > 0 {
					// The bytes do for every task that waits for them.
					for ref, r := range fetching {
						if r.hash == m.Bundle {
							r.answer(a)
							delete(fetching, ref)
						}
					}
				} else if r := fetching[m.Fetch]; r != nil && r.hash == m.Bundle {
					r.answer(a)
					delete(fetching, m.Fetch)
				}
			case wire.MsgHeartbeat:
			case wire.MsgBye:
				return welcomed, fmt.Errorf("the dispatcher is leaving")
			case wire.MsgError:
				if m.Code == wire.ErrCodeUnknownSession {
					return welcomed, fmt.Errorf("the dispatcher does not know this session (declared dead?)")
				}
				w.log.Warn("the dispatcher reports an error", "code", m.Code, "text", m.Text)
				if !welcomed {
					return false, fmt.Errorf("registration refused: %s", m.Text)
				}
			default:
				w.log.Warn("ignored an unexpected message from the dispatcher", "type", m.Type)
			}
		case f := <-w.ts.done:
			if welcomed {
				w.finishTask(f, sock)
			} else {
				w.finishTask(f, nil)
			}
		case r := <-w.ts.fetches:
			switch {
			case r.ctx.Err() != nil:
			case !welcomed:
				r.fail("not connected to the dispatcher")
			default:
				if old := fetching[r.ref]; old != nil {
					old.fail("asked again")
				}
				fetching[r.ref] = r
				w.sendMsg(sock, &wire.Message{Type: wire.MsgFetch, Fetch: r.ref, Bundle: r.hash})
			}
		case <-hb.C:
			for ref, r := range fetching {
				if r.ctx.Err() != nil {
					delete(fetching, ref) // its task gave up
				}
			}
			if time.Since(lastHeard) > silent {
				return welcomed, fmt.Errorf("no word from the dispatcher for %s", time.Since(lastHeard).Round(time.Millisecond))
			}
			if welcomed {
				w.sendMsg(sock, &wire.Message{Type: wire.MsgHeartbeat, Free: w.ts.free()})
			}
		case <-w.drainTimer:
			w.drainTimer = nil
			w.ts.stopAll()
		case <-ctxDone(ctx, w.stopping):
			w.beginStop()
			if welcomed {
				w.sendMsg(sock, &wire.Message{Type: wire.MsgDrain})
			}
		}
	}
}
