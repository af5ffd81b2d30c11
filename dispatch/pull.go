package dispatch

// Pull mode: a REP socket; pull workers (REQ, one socket per sandbox: a
// lane) say HELLO on each new socket and get a CHALLENGE that opens a
// channel (see wire/message.go); then they send a PULL, sealed on that channel,
// whenever they have a free sandbox, a result to deliver, or at least once
// per heartbeat interval, and get a sealed WORK reply: tasks (at most as
// many as they have free sandboxes), acknowledgements of recorded results,
// and cancellations. A PULL that does not verify on its channel (the
// worker's first one is its proof that it holds the worker secret) is
// answered with an open ERROR before anything in it is looked at. The
// dispatcher keeps its bookkeeping per lane.
// A WORK without tasks is the "none" answer; the worker then backs off
// (exponentially, capped by the reply's retry_ms), while a worker that got
// a task asks again at once, so a busy queue adds no latency.
//
// REP serves one request at a time, so the loop never waits on Redis for
// long: results are recorded by the completer off the loop, adoption checks
// run off the loop, and the one store call on the loop (the claim) has a
// short timeout (a claim that timed out on the client but happened on the
// server leaves leases nobody renews; they expire and the tasks are
// requeued).
//
// A lane that needs the bundle of a task it holds asks for it with a FETCH
// of its own between PULLs. The loop never reads the bundle itself: the
// first FETCH starts the read (Core.Bundle, cached) on a goroutine and is
// answered PENDING with a short retry_ms; a FETCH after the read ended gets
// its outcome (the bytes, MISSING, UNAVAILABLE, TOO_LARGE). A FETCH is not
// a PULL: it moves no seq, confirms or loses no reply, and hands out
// nothing.
//
// Failure handling:
//   - Every task carries a deadline (task timeout + grace). A task whose
//     result has not arrived by then is requeued at once through the store
//     (the attempt counted, or FAILED with WORKER_LOST after the maximum),
//     its lease is no longer renewed, and the worker is told to cancel it if
//     it asks again; its late result is rejected by the lease check.
//   - A reply can be lost (the worker gave up waiting and made a new
//     socket); the next PULL names the reply it got, and the tasks of every
//     other reply of that worker session go back to the queue without
//     counting an attempt.
//   - After a dispatcher restart a worker's PULL lists the tasks it runs;
//     they are adopted if their leases are still the worker's, else
//     cancelled. Results are kept by the worker until acknowledged and sent
//     again after a reconnect: recorded if the claim is current, rejected
//     otherwise, never twice.
//   - On shutdown the dispatcher stops handing out tasks, keeps answering
//     (and recording results) for up to Drain, then releases what is still
//     out (not counted).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/wire"
)

type pullSession struct {
	key         sessKey
	owner       string
	lastSeen    time.Time
	running     map[string]*outTask
	outstanding map[uint64][]store.Claim // replies not confirmed, by seq
	seq         uint64
	acks        []wire.Ack
	cancels     []wire.Ref
	maxMsg      int    // the largest message the lane takes (its last PULL; 0: not said)
	walls       string // its sandboxes' OS walls, as its last PULL said
}

// bundleRead is a read of a bundle from the store for FETCHes: the first
// FETCH starts it, and every FETCH of it after it ended gets its outcome
// (until it is forgotten: a while after it ended, at once when it failed).
type bundleRead struct {
	done  bool
	data  []byte
	err   error
	ended time.Time
}

const (
	// fetchRetry is the retry_ms of a PENDING answer to a FETCH.
	fetchRetry = 10 * time.Millisecond
	// readKeep is how long the outcome of a bundle read is kept for the
	// FETCHes of other lanes (the bytes stay in Core's cache longer).
	readKeep = 10 * time.Second
)

type pullDispatcher struct {
	*remote
	claimTimeout time.Duration

	mu       sync.Mutex
	gate     *wire.Gate[wire.ID16]    // by channel id
	sessions map[sessKey]*pullSession // by lane
	procs    map[sessKey]time.Time    // worker processes seen (lane 0), last time
	reads    map[string]*bundleRead   // by tenant and bundle hash
	stopping bool
}

// RunPull is pull mode: it answers pull workers on cfg.Listen until ctx
// ends, then drains (see the file comment).
func RunPull(ctx context.Context, cfg RemoteConfig) error {
	d := &pullDispatcher{gate: wire.NewGate[wire.ID16](cfg.Secret), sessions: map[sessKey]*pullSession{}, procs: map[sessKey]time.Time{},
		reads: map[string]*bundleRead{}}
	r, err := startRemote(cfg, "pull", wire.ListenRep, func(k sessKey, a wire.Ack) {
		d.mu.Lock()
		if s := d.sessions[k]; s != nil && len(s.acks) < 100000 {
			s.acks = append(s.acks, a)
		}
		d.mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer r.close()
	d.remote = r
	d.claimTimeout = max(100*time.Millisecond, min(500*time.Millisecond, d.cfg.Lease/10))
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); d.serve(d.bgCtx) }()
	go func() { defer loops.Done(); d.watch(d.bgCtx) }()
	d.log.Info("dispatcher ready", "name", d.cfg.Name, "listen", d.sock.Addr().String(), "deadline", d.cfg.deadline(),
		"max_message", d.cfg.Wire.MaxMessage)

	<-ctx.Done()
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.drain(d.running)
	// Release what is still out; a worker asking in the meantime is told
	// to cancel it.
	d.mu.Lock()
	var left []store.Claim
	for _, s := range d.sessions {
		for id, t := range s.running {
			delete(s.running, id)
			s.cancels = append(s.cancels, t.ref())
			if !t.adopting {
				left = append(left, t.claim)
			}
		}
	}
	d.mu.Unlock()
	d.release(left)
	d.closeCompleter()
	// Give workers a moment to collect acknowledgements and cancellations.
	time.Sleep(min(d.cfg.Heartbeat, 200*time.Millisecond))
	d.stopBg() // first, so that the loops take the socket's end for the end
	d.sock.Close()
	loops.Wait()
	d.log.Info("dispatcher stopped")
	return nil
}

func (d *pullDispatcher) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.sessions {
		n += len(s.running)
	}
	return n
}

// serve is the REP loop: one request, one reply.
func (d *pullDispatcher) serve(ctx context.Context) {
	for {
		m, err := d.sock.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// A request without the REQ envelope and the like.
			d.rlog.Warn("recv", "dropped a malformed request", "err", err)
			continue
		}
		reply := d.handle(ctx, m.Frames)
		if err := d.sock.Send(zmq4.NewMsg(reply)); err != nil && ctx.Err() == nil {
			d.rlog.Warn("send", "sending a reply failed", "err", err)
		}
	}
}

func errorReply(code int, text string) []byte {
	return (&wire.Message{Type: wire.MsgError, Code: code, Text: text}).Encode(nil)
}

func (d *pullDispatcher) handle(ctx context.Context, frames [][]byte) []byte {
	if len(frames) != 1 {
		d.rlog.Warn("malformed", "dropped a malformed request", "err", fmt.Sprintf("%d frames instead of 1", len(frames)))
		return errorReply(wire.ErrCodeMalformed, "one frame expected")
	}
	m, err := wire.Decode(frames[0])
	if err != nil {
		if errors.Is(err, wire.ErrWireVersion) {
			d.rlog.Error("version", "a worker speaks another wire version: run the same faas release on the dispatcher and its workers",
				"worker_version", wire.FrameVersion(frames[0]), "dispatcher_version", wire.WireVersion)
			return wire.VersionError(wire.FrameVersion(frames[0]))
		}
		d.rlog.Warn("malformed", "dropped a malformed request", "err", err, "bytes", len(frames[0]))
		return errorReply(wire.ErrCodeMalformed, err.Error())
	}
	switch m.Type {
	case wire.MsgHello:
		return d.hello(m)
	case wire.MsgPull, wire.MsgFetch:
	default:
		d.rlog.Warn("unexpected", "dropped a message a pull worker should not send", "type", m.Type)
		return errorReply(wire.ErrCodeUnexpected, "unexpected "+m.Type.String())
	}
	now := time.Now()

	d.mu.Lock()
	ch, _, err := d.gate.Open(m.Channel, m, now)
	switch {
	case errors.Is(err, wire.ErrUnknownChannel):
		d.mu.Unlock()
		d.rlog.Warn("unknown", "refused a request on an unknown channel", "type", m.Type)
		return errorReply(wire.ErrCodeUnknownSession, "unknown channel: say HELLO again")
	case errors.Is(err, wire.ErrRefused):
		// The worker's proof failed: it gets nothing, and starts over.
		d.mu.Unlock()
		d.rlog.Warn("auth", "refused a worker that failed authentication (it does not hold this dispatcher's worker secret)",
			"claimed_name", ch.Name, "err", err)
		return errorReply(wire.ErrCodeUnauthorized, d.gate.Refusal())
	case err != nil:
		d.mu.Unlock()
		d.rlog.Warn("auth", "refused a request that failed authentication (forged, replayed or corrupted)", "worker", ch.Name, "err", err)
		return errorReply(wire.ErrCodeUnauthorized, "the request failed authentication")
	}
	if m.Type == wire.MsgFetch {
		reply := d.fetch(ch, m, now)
		d.mu.Unlock()
		return ch.SealAs(reply, m.Seq)
	}
	if m.Free > wire.MaxCapacity {
		d.mu.Unlock()
		d.rlog.Warn("malformed", "refused a malformed request", "name", ch.Name, "free", m.Free)
		return ch.SealAs(&wire.Message{Type: wire.MsgError, Code: wire.ErrCodeMalformed, Text: "bad request"}, m.Seq)
	}
	key := sessKey{name: ch.Name, session: ch.Session, lane: ch.Lane}
	s := d.sessions[key]
	if s == nil {
		s = &pullSession{key: key, owner: key.owner(), running: map[string]*outTask{}, outstanding: map[uint64][]store.Claim{}}
		d.sessions[key] = s
		proc := sessKey{name: ch.Name, session: ch.Session}
		if _, ok := d.procs[proc]; !ok {
			d.log.Info("worker connected", "worker", s.owner)
		}
		d.procs[proc] = now
	}
	s.lastSeen = now
	s.maxMsg = m.MaxMessage
	s.walls = m.Walls
	held := make(map[wire.Ref]bool, len(m.Held))
	for _, h := range m.Held {
		held[wire.Ref{ID: h.ID, Fence: h.Fence}] = true
	}
	// Replies the worker never got: their tasks go back, not counted
	// (unless it says it holds them: requests of two sockets of one lane
	// can arrive out of order).
	var lost []store.Claim
	for seq, claims := range s.outstanding {
		if m.Incarnation == d.inc && seq == m.GotSeq {
			delete(s.outstanding, seq)
			continue
		}
		delete(s.outstanding, seq)
		for _, cl := range claims {
			if held[wire.Ref{ID: cl.TaskID, Fence: cl.Fence}] {
				continue
			}
			if t := s.running[cl.TaskID]; t != nil && t.claim.Fence == cl.Fence {
				delete(s.running, cl.TaskID)
				lost = append(lost, cl)
			}
		}
	}
	// A single result with a request for work (a lane's usual PULL) is
	// recorded and the next tasks claimed in one round trip to the store,
	// below; any other goes to the completer.
	var fused *wire.Result
	for i, r := range m.Results {
		t := s.running[r.ID]
		current := t != nil && t.claim.Fence == r.Fence
		if current {
			delete(s.running, r.ID)
		}
		if current && len(m.Results) == 1 && m.Free > 0 && !d.stopping && !m.Draining &&
			d.comp.claim(wire.Ref{ID: r.ID, Fence: r.Fence}) {
			fused = &m.Results[i]
			continue
		}
		d.comp.submit(key, r)
	}
	for _, ref := range m.Released {
		if t := s.running[ref.ID]; t != nil && t.claim.Fence == ref.Fence {
			delete(s.running, ref.ID)
			if !t.adopting {
				lost = append(lost, t.claim)
			}
		}
	}
	// Tasks it runs that this dispatcher does not know (it restarted).
	var adopting []wire.Ref
	for _, h := range m.Held {
		if h.Done || s.running[h.ID] != nil {
			continue
		}
		s.running[h.ID] = &outTask{claim: store.Claim{TaskID: h.ID, Fence: h.Fence}, adopting: true,
			deadline: now.Add(max(d.cfg.deadline()-h.Elapsed, d.cfg.Grace))}
		adopting = append(adopting, wire.Ref{ID: h.ID, Fence: h.Fence})
	}
	want, maxMsg := m.Free, m.MaxMessage
	if d.stopping || m.Draining {
		want = 0
	}
	d.mu.Unlock()

	for _, cl := range lost {
		d.core.Untrack(cl)
		go d.core.Release(d.bgCtx, cl)
	}
	if len(adopting) > 0 {
		go d.adopt(key, s.owner, adopting)
	}

	var claims []store.Claim
	var fusedAck *wire.Ack
	if fused != nil {
		ref := wire.Ref{ID: fused.ID, Fence: fused.Fence}
		cctx, cancel := context.WithTimeout(ctx, d.claimTimeout)
		ok, next, ferr := d.core.CompleteAndClaimOnce(cctx, store.Claim{TaskID: fused.ID, Fence: fused.Fence}, fused.Result, s.owner, want)
		cancel()
		d.comp.release(ref)
		if ferr != nil {
			// Recorded by the completer instead (it retries); claimed below.
			d.comp.submit(key, *fused)
		} else {
			claims, want = next, 0
			fusedAck = &wire.Ack{ID: fused.ID, Fence: fused.Fence, Recorded: ok}
		}
	}
	if _, idle := d.core.NothingNew(); want > 0 && idle {
		want = 0 // the queue was just found empty and nothing came since: "none"
	}
	if want > 0 {
		cctx, cancel := context.WithTimeout(ctx, d.claimTimeout)
		claims, err = d.core.ClaimFor(cctx, s.owner, want)
		cancel()
		if err != nil && ctx.Err() == nil {
			d.rlog.Warn("claim", "claiming tasks failed", "err", err)
		}
	}

	reply := &wire.Message{Type: wire.MsgWork, Incarnation: d.inc, MaxMessage: d.cfg.Wire.MaxMessage}
	d.mu.Lock()
	defer d.mu.Unlock()
	s.seq++
	reply.WorkSeq = s.seq
	var sent []store.Claim
	for _, cl := range claims {
		t, bad := wireTask(cl, d.cfg.Limits.Timeout, maxMsg/max(1, len(claims)))
		if bad != nil {
			d.comp.submit(key, wire.Result{ID: cl.TaskID, Fence: cl.Fence, Result: bad})
			continue
		}
		ot := &outTask{claim: strip(cl), deadline: now.Add(d.cfg.deadline())}
		s.running[cl.TaskID] = ot
		d.track(key, ot)
		sent = append(sent, ot.claim)
		reply.Tasks = append(reply.Tasks, t)
	}
	if len(sent) > 0 {
		s.outstanding[s.seq] = sent
	}
	if len(reply.Tasks) == 0 {
		reply.RetryAfter = d.cfg.Heartbeat
	}
	reply.Acks, s.acks = s.acks, nil
	if fusedAck != nil {
		reply.Acks = append(reply.Acks, *fusedAck)
	}
	reply.Cancels, s.cancels = s.cancels, nil
	return ch.SealAs(reply, m.Seq)
}

// fetch answers a lane's FETCH of the bundle of a task it holds (see the
// file comment). d.mu is held.
func (d *pullDispatcher) fetch(ch *wire.Channel, m *wire.Message, now time.Time) *wire.Message {
	key := sessKey{name: ch.Name, session: ch.Session, lane: ch.Lane}
	s := d.sessions[key]
	var t *outTask
	if s != nil {
		s.lastSeen = now
		t = s.running[m.Fetch.ID]
	}
	if why := fetchRefusal(t, m.Fetch, m.Bundle); why != "" {
		d.rlog.Warn("fetch", "refused a worker's bundle fetch", "worker", key.owner(), "task", m.Fetch.ID, "why", why)
		return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: m.Bundle, Code: wire.BundleRefused, Text: why}
	}
	owner, hash := t.claim.Owner, m.Bundle
	if data, ok := d.core.CachedBundle(owner, hash); ok {
		return bundleReply(m.Fetch, hash, data, nil, s.maxMsg) // no PENDING round trip
	}
	rk := bundleKey(owner, hash)
	r := d.reads[rk]
	if r == nil {
		r = &bundleRead{}
		d.reads[rk] = r
		go d.read(r, owner, hash, m.Fetch.ID)
	}
	if !r.done {
		return &wire.Message{Type: wire.MsgBundle, Fetch: m.Fetch, Bundle: hash, Code: wire.BundlePending, RetryAfter: fetchRetry}
	}
	if r.err != nil {
		delete(d.reads, rk) // the next FETCH asks the store again
	}
	return bundleReply(m.Fetch, hash, r.data, r.err, s.maxMsg)
}

// read reads a bundle for the FETCHes of r, off the REP loop.
func (d *pullDispatcher) read(r *bundleRead, owner, hash, task string) {
	ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
	data, err := d.core.Bundle(ctx, owner, hash)
	cancel()
	if err != nil && !errors.Is(err, ErrNoBundle) && d.bgCtx.Err() == nil {
		d.rlog.Warn("bundle", "reading a bundle for a worker failed; it hands the task back", "task", task, "err", err)
	}
	d.mu.Lock()
	r.done, r.data, r.err, r.ended = true, data, err, time.Now()
	d.mu.Unlock()
}

// hello answers a HELLO with a CHALLENGE that opens a new channel for the
// lane socket (see wire/message.go).
func (d *pullDispatcher) hello(m *wire.Message) []byte {
	ch, challenge, err := d.gate.Hello(m)
	if err != nil {
		d.rlog.Warn("malformed", "refused a malformed HELLO", "err", err)
		return errorReply(wire.ErrCodeMalformed, "bad HELLO: "+err.Error())
	}
	d.mu.Lock()
	n := d.gate.Add(ch.ID, ch, time.Now())
	d.mu.Unlock()
	if n > 0 {
		d.rlog.Warn("pending", "too many workers in their handshake; forgot the oldest", "forgotten", n)
	}
	return challenge.Encode(nil)
}

func (d *pullDispatcher) track(key sessKey, t *outTask) {
	ref := t.ref()
	d.core.TrackFor(t.claim, key.owner(), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if s := d.sessions[key]; s != nil {
			if cur := s.running[ref.ID]; cur != nil && cur.claim.Fence == ref.Fence {
				delete(s.running, ref.ID)
				s.cancels = append(s.cancels, ref)
			}
		}
	})
}

func (d *pullDispatcher) adopt(key sessKey, owner string, refs []wire.Ref) {
	ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
	defer cancel()
	lost, err := adopt(ctx, d.core, owner, refs)
	if err != nil {
		d.rlog.Warn("adopt", "could not check the tasks a worker reported; cancelling them", "worker", owner, "err", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[key]
	if s == nil {
		return
	}
	n := 0
	for _, ref := range refs {
		t := s.running[ref.ID]
		if t == nil || !t.adopting || t.claim.Fence != ref.Fence {
			continue
		}
		if err != nil || lost[ref.ID] {
			delete(s.running, ref.ID)
			s.cancels = append(s.cancels, ref)
			continue
		}
		t.adopting = false
		d.track(key, t)
		n++
	}
	if n > 0 {
		d.log.Info("adopted the tasks a worker was running", "worker", owner, "count", n)
	}
}

// watch requeues tasks past their deadline and forgets idle sessions.
func (d *pullDispatcher) watch(ctx context.Context) {
	t := time.NewTicker(max(10*time.Millisecond, min(250*time.Millisecond, d.cfg.Grace/4)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var late []store.Claim
		d.mu.Lock()
		for key, s := range d.sessions {
			for id, t := range s.running {
				if now.After(t.deadline) {
					delete(s.running, id)
					s.cancels = append(s.cancels, t.ref())
					if !t.adopting {
						late = append(late, t.claim)
					}
				}
			}
			if len(s.running) == 0 && len(s.outstanding) == 0 && now.Sub(s.lastSeen) > 10*time.Minute {
				delete(d.sessions, key)
			}
		}
		// A lane (one sandbox) asks at least once per heartbeat while it
		// lives; a busy one is alive while its task is.
		lanes, busy := 0, 0
		var walls []string
		for _, s := range d.sessions {
			if len(s.running) > 0 || now.Sub(s.lastSeen) <= time.Duration(d.cfg.Misses)*d.cfg.Heartbeat {
				lanes++
				busy += len(s.running)
				walls = append(walls, wallsOf(s.walls))
			}
		}
		d.view.set(lanes, busy, walls)
		for key, seen := range d.procs {
			if now.Sub(seen) > 10*time.Minute {
				delete(d.procs, key)
			}
		}
		for k, r := range d.reads {
			if r.done && now.Sub(r.ended) > readKeep {
				delete(d.reads, k)
			}
		}
		// A lane asks at least once per heartbeat; a channel idle for
		// long is gone (its worker says HELLO again if it comes back).
		d.gate.Expire(now, func(_ wire.ID16, ch *wire.Channel, idle time.Duration) bool {
			return idle > 30*time.Second && (!ch.Proved() || idle > 5*time.Minute)
		})
		d.mu.Unlock()
		if len(late) > 0 {
			d.log.Warn("tasks passed their deadline; requeueing them", "count", len(late))
			rctx, cancel := context.WithTimeout(ctx, d.core.Lease())
			if err := d.core.Requeue(rctx, late); err != nil {
				d.rlog.Warn("requeue", "requeueing late tasks failed; they go back when their leases expire", "err", err)
			}
			cancel()
		}
	}
}
