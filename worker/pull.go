package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/wire"
)

// RunPull is a pull worker: it asks the dispatcher at cfg.URL for work for
// pool until ctx ends and its tasks are finished or handed back.
//
// Each sandbox has its own lane: a REQ socket and a loop that asks for one
// task whenever that sandbox is free. One socket for all sandboxes would
// leave a sandbox idle while another's request is in flight (REQ allows one
// at a time). A lane fetches the bundle its task needs with FETCH requests
// on its socket between PULLs; the lanes share one bundle cache.
func RunPull(ctx context.Context, cfg Config, pool Runner) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	session := wire.NewID16()
	log := cfg.Logger.With("mode", "pull", "worker", cfg.Name)
	log.Info("pull worker starting", "dispatcher", cfg.URL, "sandboxes", pool.Size(), "session", session.String())
	go func() {
		<-ctx.Done()
		log.Info("pull worker stopping", "drain", cfg.Drain)
	}()
	var wg sync.WaitGroup
	errs := newErrLog(log)
	bundles := newBundles(cfg)
	for lane := range pool.Size() {
		w := &pullWorker{cfg: cfg, session: session, lane: lane, log: log.With("lane", lane), errs: errs}
		w.ts = newTasks(oneSandbox{pool}, w.log, cfg.Wire.MaxMessage, bundles)
		w.timeout = max(time.Duration(cfg.Misses)*cfg.Heartbeat, time.Second)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	wg.Wait()
	log.Info("pull worker stopped")
	return nil
}

// oneSandbox is a lane's view of the pool.
type oneSandbox struct{ Runner }

func (oneSandbox) Size() int { return 1 }

const minBackoff = 2 * time.Millisecond

// laneFetch is a FETCH a lane is to make at at.
type laneFetch struct {
	req *fetchReq
	at  time.Time
}

type pullWorker struct {
	cfg     Config
	log     *slog.Logger
	session wire.ID16
	lane    int
	ts      *tasks
	timeout time.Duration // for a reply
	errs    *errLog

	ch     *wire.Channel // of the current socket
	proved bool          // the dispatcher answered on ch

	gen      int           // socket generation
	inc      wire.ID16     // dispatcher incarnation of the last reply
	gotSeq   uint64        // seq of the reply to the previous request, 0 if none
	backoff  time.Duration // current wait while there is no work
	retryMax time.Duration
	released []wire.Ref

	// FETCHes to make for this lane's tasks, each when its time comes (a
	// PENDING answer says when to ask again); taken only while connected.
	fetchQ    []*laneFetch
	connected bool

	stopping bool
	drainEnd time.Time
	giveUpAt time.Time
}

func (w *pullWorker) run(ctx context.Context) {
	w.retryMax = w.cfg.Heartbeat
	reconnect := 100 * time.Millisecond
	for !w.done() {
		sctx, cancel := context.WithCancel(context.Background())
		sock, err := wire.DialReq(sctx, w.cfg.URL, w.cfg.Wire)
		if err != nil {
			cancel()
			w.log.Debug("dispatcher not reachable; retrying", "err", err, "retry_in", reconnect)
			w.idle(ctx, reconnect)
			reconnect = min(2*reconnect, 2*time.Second)
			continue
		}
		w.gen++
		n, err := w.serve(ctx, sock)
		sock.Close()
		cancel()
		if n > 0 {
			reconnect = 100 * time.Millisecond
		}
		if errors.Is(err, errStopped) {
			break
		}
		w.errs.report(err)
		w.gotSeq = 0
		w.idle(ctx, reconnect)
		reconnect = min(2*reconnect, 2*time.Second)
	}
	w.ts.stopAll()
	w.ts.wg.Wait()
	if len(w.ts.unacked) > 0 {
		w.log.Warn("leaving with results the dispatcher did not acknowledge", "count", len(w.ts.unacked))
	}
}

func (w *pullWorker) done() bool {
	if !w.stopping {
		return false
	}
	return (len(w.ts.running) == 0 && len(w.ts.unacked) == 0 && len(w.released) == 0) || time.Now().After(w.giveUpAt)
}

func (w *pullWorker) beginStop() {
	if w.stopping {
		return
	}
	w.stopping = true
	w.drainEnd = time.Now().Add(w.cfg.Drain)
	w.giveUpAt = w.drainEnd.Add(max(2*time.Second, w.timeout))
	w.log.Debug("lane stopping", "running", len(w.ts.running), "drain", w.cfg.Drain)
}

// idle waits d, collecting finished tasks; it returns early when a task
// finishes (there is something to send) or the worker starts stopping.
func (w *pullWorker) idle(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	var stopAt <-chan time.Time
	if w.stopping && !w.drainEnd.IsZero() {
		if left := time.Until(w.drainEnd); left > 0 {
			stopAt = time.After(left)
		} else {
			w.ts.stopAll()
		}
	}
	select {
	case <-t.C:
	case f := <-w.ts.done:
		if _, release := w.ts.finish(f); release {
			w.released = append(w.released, f.ref)
		}
	case r := <-w.ts.fetches:
		w.takeFetch(r)
	case <-stopAt:
		w.ts.stopAll()
	case <-ctxDone(ctx, w.stopping):
		w.beginStop()
	}
}

// serve exchanges requests on one socket until it fails or the worker is
// done. n is the number of replies received.
func (w *pullWorker) serve(ctx context.Context, sock zmq4.Socket) (n int, err error) {
	if err := w.handshake(sock); err != nil {
		return 0, err
	}
	w.connected = true
	defer func() {
		w.connected = false
		for _, f := range w.fetchQ {
			f.req.fail("lost the connection to the dispatcher")
		}
		w.fetchQ = nil
	}()
	lastAsk := time.Time{}
	for {
		if w.done() {
			return n, errStopped
		}
		// Collect whatever finished meanwhile, and what tasks ask for.
		for drained := false; !drained; {
			select {
			case f := <-w.ts.done:
				if _, release := w.ts.finish(f); release {
					w.released = append(w.released, f.ref)
				}
			case r := <-w.ts.fetches:
				w.takeFetch(r)
			default:
				drained = true
			}
		}
		if w.stopping && time.Now().After(w.drainEnd) {
			w.ts.stopAll()
		}
		if f := w.dueFetch(); f != nil {
			if err := w.fetchExchange(sock, f); err != nil {
				return n, err
			}
			n++
			continue
		}
		if !w.due(lastAsk) {
			w.idle(ctx, min(w.waitFor(lastAsk), w.untilFetch()))
			continue
		}
		lastAsk = time.Now()
		if err := w.exchange(sock); err != nil {
			return n, err
		}
		n++
	}
}

// handshake says HELLO on a new socket and opens the channel its
// CHALLENGE offers.
func (w *pullWorker) handshake(sock zmq4.Socket) error {
	w.ch, w.proved = nil, false
	hello := &wire.Message{Type: wire.MsgHello, Name: w.cfg.Name, Session: w.session, Lane: w.lane, Nonce: wire.NewNonce()}
	if err := sock.Send(zmq4.NewMsg(hello.Encode(nil))); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	m, err := w.recv(sock)
	if err != nil {
		return err
	}
	switch {
	case m.Type == wire.MsgChallenge:
	case m.Type == wire.MsgError && !m.Sealed:
		return refusal(m)
	default:
		return fmt.Errorf("unexpected %s in answer to HELLO", m.Type)
	}
	if err := checkChallenge(w.cfg.Secret, m); err != nil {
		return err
	}
	w.ch = wire.WorkerChannel(w.cfg.Secret, hello, m)
	return nil
}

// unsent are the results not yet sent on this socket.
func (w *pullWorker) unsent() []*result {
	var out []*result
	for _, u := range w.ts.unacked {
		if u.sent != w.gen {
			out = append(out, u)
		}
	}
	return out
}

// due says whether a request should go now.
func (w *pullWorker) due(lastAsk time.Time) bool {
	if lastAsk.IsZero() || len(w.unsent()) > 0 || len(w.released) > 0 {
		return true
	}
	since := time.Since(lastAsk)
	if since >= w.cfg.Heartbeat {
		return true // keep acknowledgements and cancellations flowing
	}
	if w.stopping {
		// Waiting for acknowledgements: ask again soon.
		return len(w.ts.unacked) > 0 && since >= 50*time.Millisecond
	}
	return w.ts.free() > 0 && since >= w.backoff
}

func (w *pullWorker) waitFor(lastAsk time.Time) time.Duration {
	next := w.cfg.Heartbeat
	if w.stopping {
		next = 50 * time.Millisecond
	} else if w.ts.free() > 0 {
		next = w.backoff
	}
	return max(time.Until(lastAsk.Add(next)), time.Millisecond)
}

// exchange sends one PULL and handles the reply.
func (w *pullWorker) exchange(sock zmq4.Socket) error {
	req := &wire.Message{Type: wire.MsgPull, Incarnation: w.inc, GotSeq: w.gotSeq, Draining: w.stopping,
		Held: w.ts.held(), Released: w.released, MaxMessage: w.cfg.Wire.MaxMessage, Walls: w.cfg.Walls}
	if !w.stopping {
		req.Free = w.ts.free()
	}
	budget := w.ts.maxMsg - 64<<10 - 64*len(req.Held)
	var sending []*result
	for _, u := range w.unsent() {
		r := w.ts.fit(u)
		size := len(r.Result.Payload) + len(r.Result.Stdout) + len(r.Result.Stderr) + 4096
		if r.Result.Error != nil {
			size += len(r.Result.Error.Message) + len(r.Result.Error.Traceback)
		}
		if len(sending) > 0 && size > budget {
			break
		}
		budget -= size
		sending = append(sending, u)
		req.Results = append(req.Results, r)
	}
	prevSeq := w.gotSeq
	w.gotSeq = 0
	frame := w.ch.Seal(req)
	if err := sock.Send(zmq4.NewMsg(frame)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	for _, u := range sending {
		u.sent = w.gen
	}
	released := w.released
	w.released = nil
	lost := func() {
		// The results go again on the next socket; so do the releases.
		for _, u := range sending {
			u.sent = 0
		}
		w.released = append(released, w.released...)
	}
	m, err := w.recv(sock)
	if err != nil {
		lost()
		return err
	}
	err = w.openReply(m, req.Seq, func(open bool) {
		// Open: an ERROR, the dispatcher could not authenticate or place
		// the request and looked at nothing in it, so the previous reply
		// still stands. Not authentic: treated as no reply (the request
		// may have been served). Either way, start over on a new socket.
		lost()
		if open {
			w.gotSeq = prevSeq
		}
	})
	if err != nil {
		return err
	}
	switch m.Type {
	case wire.MsgWork:
	case wire.MsgError:
		// Refused before it was looked at: the previous reply still
		// stands.
		w.log.Warn("the dispatcher refused a request", "code", m.Code, "text", m.Text)
		w.gotSeq = prevSeq
		w.released = append(released, w.released...)
		for _, u := range sending {
			u.sent = 0
		}
		w.backoff = max(w.backoff, 100*time.Millisecond)
		return nil
	default:
		return fmt.Errorf("unexpected %s reply", m.Type)
	}
	if m.Incarnation != w.inc {
		if !w.inc.IsZero() {
			w.log.Info("the dispatcher restarted", "dispatcher", m.Incarnation.String())
		}
		// A new dispatcher has none of the results sent to the old one.
		for _, u := range w.ts.unacked {
			if u.sent != 0 && !contains(sending, u) {
				u.sent = 0
			}
		}
		w.inc = m.Incarnation
	}
	w.gotSeq = m.WorkSeq
	w.ts.limit(m.MaxMessage)
	for _, a := range m.Acks {
		w.ts.ack(a)
	}
	for _, ref := range m.Cancels {
		w.ts.cancel(ref)
	}
	for _, t := range m.Tasks {
		if w.stopping {
			w.released = append(w.released, wire.Ref{ID: t.ID, Fence: t.Fence})
			continue
		}
		w.ts.start(t)
	}
	if m.RetryAfter > 0 {
		w.retryMax = min(m.RetryAfter, w.cfg.Heartbeat)
	}
	switch {
	case len(m.Tasks) > 0 || req.Free == 0:
		w.backoff = 0
	default:
		w.backoff = min(max(2*w.backoff, minBackoff), w.retryMax)
	}
	return nil
}

// takeFetch queues a task's request for a bundle, or fails it at once
// while the lane has no socket.
func (w *pullWorker) takeFetch(r *fetchReq) {
	if !w.connected {
		r.fail("not connected to the dispatcher")
		return
	}
	w.fetchQ = append(w.fetchQ, &laneFetch{req: r, at: time.Now()})
}

// dueFetch is the queued FETCH to make now, if any; requests whose task
// gave up are dropped.
func (w *pullWorker) dueFetch() *laneFetch {
	w.fetchQ = slices.DeleteFunc(w.fetchQ, func(f *laneFetch) bool { return f.req.ctx.Err() != nil })
	now := time.Now()
	for _, f := range w.fetchQ {
		if !f.at.After(now) {
			return f
		}
	}
	return nil
}

// openReply authenticates m, the reply to the sealed request seq. A reply
// sent open (an ERROR: the dispatcher looked at nothing in the request) or
// one that fails authentication makes the socket useless: undo(open) runs
// first, then the error says why. Otherwise the dispatcher has proved it
// holds the channel's key.
func (w *pullWorker) openReply(m *wire.Message, seq uint64, undo func(open bool)) error {
	if !m.Sealed {
		undo(true)
		if m.Type == wire.MsgError {
			if !w.proved || m.Code != wire.ErrCodeUnauthorized {
				return refusal(m)
			}
			return fmt.Errorf("the dispatcher refused a request: %s", m.Text)
		}
		return fmt.Errorf("unexpected open %s reply", m.Type)
	}
	if err := w.ch.OpenReply(m, seq); err != nil {
		undo(false)
		if !w.proved {
			return errRefusedDispatcher
		}
		return fmt.Errorf("a reply failed authentication (forged, replayed or corrupted): %w", err)
	}
	w.proved = true
	return nil
}

// untilFetch is how long until the next queued FETCH is due.
func (w *pullWorker) untilFetch() time.Duration {
	d := time.Hour
	for _, f := range w.fetchQ {
		d = min(d, max(time.Until(f.at), time.Millisecond))
	}
	return d
}

// fetchExchange sends one FETCH and handles its BUNDLE. It is not a PULL:
// gotSeq, the incarnation and the back-off stay as they are. An error
// means the socket is useless (as for exchange).
func (w *pullWorker) fetchExchange(sock zmq4.Socket, f *laneFetch) error {
	r := f.req
	done := func(a fetchAns) {
		w.fetchQ = slices.DeleteFunc(w.fetchQ, func(g *laneFetch) bool { return g == f })
		r.answer(a)
	}
	fail := func(why string) { done(fetchAns{code: wire.BundleUnavailable, text: why}) }
	req := &wire.Message{Type: wire.MsgFetch, Fetch: r.ref, Bundle: r.hash}
	if err := sock.Send(zmq4.NewMsg(w.ch.Seal(req))); err != nil {
		fail("sending the request failed")
		return fmt.Errorf("send: %w", err)
	}
	// The answer comes at once, but it may be large: time for its bytes at
	// 1 MiB/s, within the task's patience.
	wait := w.timeout + time.Duration(w.cfg.Wire.MaxMessage)*time.Second/(1<<20)
	if dl, ok := r.ctx.Deadline(); ok {
		wait = max(min(wait, time.Until(dl)), 10*time.Millisecond)
	}
	m, err := w.recvWithin(sock, wait)
	if err != nil {
		fail("no answer from the dispatcher")
		return err
	}
	err = w.openReply(m, req.Seq, func(open bool) {
		if open {
			fail("the dispatcher refused the request")
		} else {
			fail("the answer failed authentication")
		}
	})
	if err != nil {
		return err
	}
	switch m.Type {
	case wire.MsgBundle:
	case wire.MsgError:
		w.log.Warn("the dispatcher refused a request", "code", m.Code, "text", m.Text)
		fail("the dispatcher refused the request: " + m.Text)
		return nil
	default:
		fail("an unexpected answer")
		return fmt.Errorf("unexpected %s reply", m.Type)
	}
	switch {
	case m.Fetch != r.ref || m.Bundle != r.hash:
		fail("the answer is for another request")
	case m.Code == wire.BundlePending:
		f.at = time.Now().Add(min(max(m.RetryAfter, time.Millisecond), time.Second))
	default:
		done(answerOf(m))
	}
	return nil
}

func contains(rs []*result, u *result) bool {
	for _, r := range rs {
		if r == u {
			return true
		}
	}
	return false
}

// recv waits for the reply; a REQ socket whose reply does not come is
// useless, so on timeout the caller makes a new one.
func (w *pullWorker) recv(sock zmq4.Socket) (*wire.Message, error) {
	return w.recvWithin(sock, w.timeout)
}

// recvWithin is recv with a timeout of d.
func (w *pullWorker) recvWithin(sock zmq4.Socket, d time.Duration) (*wire.Message, error) {
	type res struct {
		m   zmq4.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := sock.Recv()
		ch <- res{m, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("recv: %w", r.err)
		}
		if len(r.m.Frames) != 1 {
			return nil, fmt.Errorf("a %d-frame reply", len(r.m.Frames))
		}
		m, err := decodeFrame(r.m.Frames[0])
		if err != nil {
			var ae *admissionError
			if errors.As(err, &ae) {
				return nil, err
			}
			return nil, fmt.Errorf("malformed reply: %w", err)
		}
		return m, nil
	case <-t.C:
		sock.Close() // ends the Recv
		return nil, fmt.Errorf("no reply within %s", d)
	}
}
