package dispatch

// Push mode: a ROUTER socket; push workers connect with DEALER, say HELLO,
// get a CHALLENGE, and REGISTER with their capacity on the channel that
// opens (sealed: the worker's proof that it holds the worker secret; see
// wire/message.go); the dispatcher claims exactly as many tasks as there
// are free slots and sends them. Every message after the CHALLENGE is
// sealed both ways; one that does not verify on its connection's channel is
// dropped before it is looked at (wire.Gate).
//
// Concurrency: the same design as pull mode. The bookkeeping (workers,
// their slots and tasks, the admission gate) is guarded by one mutex; the
// socket's receive loop handles each message under it; nothing blocks on
// Redis under it: claims run on a few claimer goroutines (each takes the
// worker with the most free slots, reserves them, claims outside the lock,
// and hands the tasks over under it), results are recorded by the completer
// and adoption checks and bundle reads (a worker's FETCH) run on goroutines
// of their own. Sends go to a send loop through a buffered channel.
//
// Failure handling:
//   - Heartbeats go both ways every Heartbeat; a worker silent for Misses
//     intervals is declared dead: its tasks are requeued at once through the
//     store (attempt counted, or FAILED with WORKER_LOST after the maximum),
//     and whatever it sends later is ignored (an ERROR tells it to register
//     again, as a new session that holds none of those tasks).
//   - A worker that reconnects (same process, same session) REGISTERs with
//     the tasks it holds; tasks the dispatcher had sent to its old
//     connection that it does not hold were lost in flight and are released
//     without counting an attempt. After a dispatcher restart, the tasks a
//     worker reports are adopted if their leases are still the worker's
//     (checked with a renewal), else the worker is told to CANCEL them.
//   - Results are recorded through the lease check (Core.Complete) off the
//     socket loop and acknowledged; a worker keeps a result until its ACK
//     and sends it again after reconnecting, so a result that finishes while
//     the dispatcher is down is recorded if the claim is still current and
//     rejected otherwise; never twice.
//   - A task not back by its deadline (task timeout + grace) is requeued and
//     cancelled on the worker; a lease the store says is gone is cancelled
//     on the worker.
//   - On shutdown the dispatcher stops claiming, lets running tasks finish
//     for Drain, then cancels the rest on their workers and releases them
//     (not counted), and says BYE.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/wire"
)

type pushWorker struct {
	rid      string // ZeroMQ routing id of its connection
	key      sessKey
	owner    string
	capacity int
	maxMsg   int    // the largest message it takes (0: not said)
	walls    string // its sandboxes' OS walls, as it reported them
	draining bool
	lastSeen time.Time
	running  map[string]*outTask
	reserved int // slots a claim in flight is for
	acks     []wire.Ack
}

func (w *pushWorker) free() int {
	if w.draining {
		return 0
	}
	return w.capacity - len(w.running) - w.reserved
}

type outbound struct {
	rid   string
	frame []byte
}

// claimers is how many claims may be in flight at once (each for one
// worker's free slots), so that a free slot is filled without waiting for
// another worker's claim.
const claimers = 4

type pushDispatcher struct {
	*remote
	sock zmq4.Socket
	out  chan outbound // to the send loop

	mu       sync.Mutex
	free     *sync.Cond // broadcast when slots free up, and when stopping
	gate     *wire.Gate[string]
	workers  map[string]*pushWorker // by routing id
	sessions map[sessKey]*pushWorker
	stopping bool
	closed   bool        // out is closed
	ackTimer *time.Timer // armed while acknowledgements wait
	claiming sync.WaitGroup
}

// RunPush is push mode: it serves push workers on cfg.Listen until ctx
// ends, then drains (see the file comment).
func RunPush(ctx context.Context, cfg RemoteConfig) error {
	d := &pushDispatcher{out: make(chan outbound, 4096), workers: map[string]*pushWorker{}, sessions: map[sessKey]*pushWorker{},
		gate: wire.NewGate[string](cfg.Secret)}
	d.free = sync.NewCond(&d.mu)
	r, err := startRemote(cfg, "push", wire.ListenRouter, d.recorded)
	if err != nil {
		return err
	}
	defer r.close()
	d.remote, d.sock = r, r.sock
	claimCtx, stopClaims := context.WithCancel(r.bgCtx)
	defer stopClaims()

	var recv, sender, ticker sync.WaitGroup
	recv.Add(1)
	sender.Add(1)
	ticker.Add(1)
	go func() { defer recv.Done(); d.recvLoop() }()
	go func() { defer sender.Done(); d.sendLoop() }()
	go func() { defer ticker.Done(); d.tickLoop() }()
	for range claimers {
		d.claiming.Add(1)
		go d.claimLoop(claimCtx)
	}
	d.log.Info("dispatcher ready", "name", d.cfg.Name, "listen", d.sock.Addr().String(), "heartbeat", d.cfg.Heartbeat,
		"misses", d.cfg.Misses, "deadline", d.cfg.deadline(), "max_message", d.cfg.Wire.MaxMessage)

	<-ctx.Done()
	d.mu.Lock()
	d.stopping = true
	d.free.Broadcast()
	d.mu.Unlock()
	stopClaims()
	d.drain(func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.running()
	})
	d.mu.Lock()
	left := d.giveBack()
	d.mu.Unlock()
	d.release(left)
	// Claims in flight end (and give back what they took); results being
	// recorded finish (for a moment: Core.Complete waits for Redis); then
	// the last acknowledgements and BYE go out.
	d.claiming.Wait()
	d.closeCompleter()
	d.mu.Lock()
	d.flushAcks()
	for rid := range d.workers {
		d.send(rid, &wire.Message{Type: wire.MsgBye})
	}
	d.closed = true
	close(d.out)
	d.mu.Unlock()
	sender.Wait()
	d.stopBg() // first, so that the loops take the socket's end for the end
	d.sock.Close()
	recv.Wait()
	ticker.Wait()
	d.log.Info("dispatcher stopped")
	return nil
}

func (d *pushDispatcher) recvLoop() {
	for {
		m, err := d.sock.Recv()
		if err != nil {
			if d.bgCtx.Err() != nil {
				return
			}
			d.rlog.Warn("recv", "receiving failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		switch {
		case len(m.Frames) == 2:
			d.handle(string(m.Frames[0]), m.Frames[1])
		case len(m.Frames) > 0:
			d.rlog.Warn("malformed", "dropped a malformed message", "err", fmt.Sprintf("%d frames instead of 1", len(m.Frames)-1))
		}
	}
}

func (d *pushDispatcher) sendLoop() {
	for o := range d.out {
		if err := d.sock.Send(zmq4.NewMsgFrom([]byte(o.rid), o.frame)); err != nil && d.bgCtx.Err() == nil {
			d.rlog.Warn("send", "sending to a worker failed", "err", err)
		}
	}
}

func (d *pushDispatcher) tickLoop() {
	t := time.NewTicker(d.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-d.bgCtx.Done():
			return
		case <-t.C:
			d.mu.Lock()
			d.tick()
			d.mu.Unlock()
		}
	}
}

// send sends m to a worker connection: sealed on its channel once the
// worker has proved itself on it, open before (CHALLENGE, ERROR). d.mu is
// held.
func (d *pushDispatcher) send(rid string, m *wire.Message) {
	if d.closed {
		return
	}
	if ch := d.gate.Get(rid); ch != nil && ch.Proved() && m.Type.Sealing() != wire.OpenOnly {
		d.out <- outbound{rid, ch.Seal(m)}
		return
	}
	if m.Type.Sealing() == wire.SealedOnly {
		d.rlog.Warn("unsealed", "not sending a message to a connection without a channel", "type", m.Type)
		return
	}
	d.out <- outbound{rid, m.Encode(nil)}
}

// claimLoop fills free slots: it takes the worker with the most free slots,
// claims that many tasks for it outside the lock and hands them over. When
// the queue comes back short it waits for a task announced since the claim
// started (Core.WaitSince, which every claimer may do at once).
func (d *pushDispatcher) claimLoop(ctx context.Context) {
	defer d.claiming.Done()
	backoff := 50 * time.Millisecond
	for {
		d.mu.Lock()
		var w *pushWorker
		for !d.stopping {
			if w = d.best(); w != nil {
				break
			}
			d.free.Wait()
		}
		if d.stopping {
			d.mu.Unlock()
			return
		}
		if since, idle := d.core.NothingNew(); idle {
			// Another claimer just found the queue empty, and no task
			// was announced since.
			d.mu.Unlock()
			d.core.WaitSince(ctx, since)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		n := w.free()
		w.reserved += n
		key, owner := w.key, w.owner
		d.mu.Unlock()

		wakes := d.core.Wakes()
		claims, err := d.core.ClaimFor(d.bgCtx, owner, n)
		d.mu.Lock()
		d.deliver(key, n, claims)
		d.mu.Unlock()
		switch {
		case err != nil:
			if d.bgCtx.Err() == nil {
				d.rlog.Warn("claim", "claiming tasks failed", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		case len(claims) < n:
			backoff = 50 * time.Millisecond
			d.core.WaitSince(ctx, wakes)
		default:
			backoff = 50 * time.Millisecond
		}
	}
}

// best is the worker with the most free slots, nil if none has any.
func (d *pushDispatcher) best() *pushWorker {
	var best *pushWorker
	for _, w := range d.workers {
		if w.free() > 0 && (best == nil || w.free() > best.free()) {
			best = w
		}
	}
	return best
}

// deliver hands the tasks a claim for n slots of worker key got to it.
func (d *pushDispatcher) deliver(key sessKey, n int, claims []store.Claim) {
	w := d.sessions[key]
	if w != nil {
		w.reserved = max(0, w.reserved-n)
		if len(claims) < n {
			d.free.Broadcast() // its unused reservation is free again
		}
	}
	if len(claims) == 0 {
		return
	}
	if w == nil || w.draining || d.stopping {
		// Its worker went away (or the dispatcher is stopping) while the
		// claim was made: give them back, not counted.
		for _, cl := range claims {
			go d.core.Release(d.bgCtx, cl)
		}
		return
	}
	now := time.Now()
	for _, cl := range claims {
		t, bad := wireTask(cl, d.cfg.Limits.Timeout, w.maxMsg)
		if bad != nil {
			d.comp.submit(w.key, wire.Result{ID: cl.TaskID, Fence: cl.Fence, Result: bad})
			continue
		}
		ot := &outTask{claim: strip(cl), deadline: now.Add(d.cfg.deadline())}
		w.running[cl.TaskID] = ot
		d.track(w, ot)
		d.send(w.rid, &wire.Message{Type: wire.MsgTask, Tasks: []wire.Task{t}})
	}
}

// track renews the claim's lease under the worker's name until it is done;
// a lease the store says is gone is cancelled on the worker.
func (d *pushDispatcher) track(w *pushWorker, t *outTask) {
	ref := t.ref()
	key := w.key
	d.core.TrackFor(t.claim, w.owner, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if w := d.sessions[key]; w != nil {
			if t := w.running[ref.ID]; t != nil && t.claim.Fence == ref.Fence {
				delete(w.running, ref.ID)
				d.send(w.rid, &wire.Message{Type: wire.MsgCancel, Cancels: []wire.Ref{ref}})
				d.free.Broadcast()
			}
		}
	})
}

// recorded is the completer's callback: the store decided on a result.
func (d *pushDispatcher) recorded(k sessKey, a wire.Ack) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.sessions[k]
	if w == nil {
		return
	}
	// Acknowledgements go out in batches, at most 20ms after a result was
	// recorded.
	w.acks = append(w.acks, a)
	if len(w.acks) >= 256 {
		d.flushAcksOf(w)
	} else if d.ackTimer == nil {
		d.ackTimer = time.AfterFunc(20*time.Millisecond, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.ackTimer = nil
			d.flushAcks()
		})
	}
}

func (d *pushDispatcher) running() int {
	n := 0
	for _, w := range d.workers {
		n += len(w.running)
	}
	return n
}

func (d *pushDispatcher) handle(rid string, frame []byte) {
	m, err := wire.Decode(frame)
	if err != nil {
		if errors.Is(err, wire.ErrWireVersion) {
			d.rlog.Error("version", "a worker speaks another wire version: run the same faas release on the dispatcher and its workers",
				"worker_version", wire.FrameVersion(frame), "dispatcher_version", wire.WireVersion)
			d.mu.Lock()
			if !d.closed {
				d.out <- outbound{rid, wire.VersionError(wire.FrameVersion(frame))}
			}
			d.mu.Unlock()
			return
		}
		d.rlog.Warn("malformed", "dropped a malformed message", "err", err, "bytes", len(frame))
		return
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case m.Type == wire.MsgHello:
		d.hello(rid, m, now)
		return
	case !m.Sealed:
		// An open ERROR or a CHALLENGE: nothing a worker sends.
		d.rlog.Warn("unexpected", "dropped a message a worker should not send", "type", m.Type)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected, Text: "unexpected " + m.Type.String()})
		return
	}
	ch, first, err := d.gate.Open(rid, m, now)
	switch {
	case errors.Is(err, wire.ErrUnknownChannel):
		// No HELLO on this connection, or its channel was forgotten.
		d.rlog.Warn("unknown", "ignored a message from a connection without a channel", "type", m.Type)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnknownSession, Text: "unknown channel: say HELLO again"})
		return
	case errors.Is(err, wire.ErrRefused):
		// The worker's proof failed: it gets nothing, and starts over.
		d.rlog.Warn("auth", "refused a worker that failed authentication (it does not hold this dispatcher's worker secret)",
			"claimed_name", ch.Name, "type", m.Type, "err", err)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnauthorized, Text: d.gate.Refusal()})
		return
	case err != nil:
		d.rlog.Warn("auth", "dropped a message that failed authentication (forged, replayed or corrupted)", "worker", ch.Name, "type", m.Type, "err", err)
		return
	}
	if first {
		if m.Type != wire.MsgRegister {
			d.rlog.Warn("unexpected", "dropped a message before the registration", "type", m.Type)
			d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnknownSession, Text: "register first"})
			return
		}
		d.register(rid, ch, m, now)
		return
	}
	w := d.workers[rid]
	if w == nil {
		// Dead, superseded or never registered: ignore what it says, and
		// tell it to register again.
		d.rlog.Warn("unknown", "ignored a message from an unknown or dead worker connection", "type", m.Type)
		switch m.Type {
		case wire.MsgHeartbeat, wire.MsgResult, wire.MsgRelease, wire.MsgDrain, wire.MsgFetch:
			d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnknownSession, Text: "unknown session: register again"})
		}
		return
	}
	if m.Type == wire.MsgRegister {
		d.rlog.Warn("unexpected", "dropped a second registration on a connection", "worker", w.owner)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected, Text: "already registered"})
		return
	}
	w.lastSeen = now
	switch m.Type {
	case wire.MsgHeartbeat:
	case wire.MsgResult:
		r := m.Results[0]
		t := w.running[r.ID]
		if t == nil || t.claim.Fence != r.Fence {
			d.comp.submit(w.key, r) // a repeat, or after a reconnection
			return
		}
		delete(w.running, r.ID)
		if w.draining || d.stopping {
			d.free.Broadcast()
			d.comp.submit(w.key, r)
			return
		}
		// The slot the result freed gets its next task with the
		// completion, in one round trip to the store: reserved for it
		// meanwhile, so that no claimer takes it.
		w.reserved++
		key := w.key
		job := completeJob{key: key, res: r, next: &nextClaim{owner: w.owner, deliver: func(claims []store.Claim) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.deliver(key, 1, claims)
		}}}
		if !d.comp.submitJob(job) {
			w.reserved--
			d.free.Broadcast()
		}
	case wire.MsgRelease:
		for _, ref := range m.Released {
			if t := w.running[ref.ID]; t != nil && t.claim.Fence == ref.Fence {
				delete(w.running, ref.ID)
				go d.core.Release(d.bgCtx, t.claim)
				d.free.Broadcast()
			}
		}
	case wire.MsgFetch:
		d.fetch(w, m.Fetch, m.Bundle)
	case wire.MsgDrain:
		w.draining = true
		d.log.Info("worker draining", "worker", w.owner, "running", len(w.running))
	case wire.MsgBye:
		d.log.Info("worker left", "worker", w.owner, "running", len(w.running))
		d.drop(w, true)
	default:
		d.rlog.Warn("unexpected", "dropped a message a worker should not send", "type", m.Type)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeUnexpected, Text: "unexpected " + m.Type.String()})
	}
}

// fetch answers a worker's FETCH of the bundle of a task it holds: the
// bytes are read (Core.Bundle: cached, one read per bundle at a time) on a
// goroutine, and the BUNDLE goes out through the send loop. d.mu is held.
func (d *pushDispatcher) fetch(w *pushWorker, ref wire.Ref, hash string) {
	t := w.running[ref.ID]
	if why := fetchRefusal(t, ref, hash); why != "" {
		d.rlog.Warn("fetch", "refused a worker's bundle fetch", "worker", w.owner, "task", ref.ID, "why", why)
		d.send(w.rid, &wire.Message{Type: wire.MsgBundle, Fetch: ref, Bundle: hash, Code: wire.BundleRefused, Text: why})
		return
	}
	owner, maxMsg := t.claim.Owner, w.maxMsg
	go func() {
		ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
		data, err := d.core.Bundle(ctx, owner, hash)
		cancel()
		if err != nil && !errors.Is(err, ErrNoBundle) && d.bgCtx.Err() == nil {
			d.rlog.Warn("bundle", "reading a bundle for a worker failed; it hands the task back", "task", ref.ID, "err", err)
		}
		reply := bundleReply(ref, hash, data, err, maxMsg)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.workers[w.rid] == w {
			d.send(w.rid, reply)
		}
	}()
}

// hello answers a HELLO with a CHALLENGE that opens a new channel on the
// connection (see wire/message.go).
func (d *pushDispatcher) hello(rid string, m *wire.Message, now time.Time) {
	ch, challenge, err := d.gate.Hello(m)
	if err != nil {
		d.rlog.Warn("malformed", "refused a malformed HELLO", "err", err)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeMalformed, Text: "bad HELLO: " + err.Error()})
		return
	}
	if w := d.workers[rid]; w != nil {
		// A connection starting over: what it held is given back.
		d.log.Info("a worker said HELLO again on its connection; its tasks go back to the queue", "worker", w.owner, "running", len(w.running))
		d.drop(w, true)
	}
	if n := d.gate.Add(rid, ch, now); n > 0 {
		d.rlog.Warn("pending", "too many workers in their handshake; forgot the oldest", "forgotten", n)
	}
	d.send(rid, challenge)
}

// register admits the worker that proved itself on channel ch.
func (d *pushDispatcher) register(rid string, ch *wire.Channel, m *wire.Message, now time.Time) {
	if m.Capacity < 1 || m.Capacity > wire.MaxCapacity {
		d.rlog.Warn("register", "refused a malformed registration", "name", ch.Name, "capacity", m.Capacity)
		d.send(rid, &wire.Message{Type: wire.MsgError, Code: wire.ErrCodeMalformed, Text: "bad registration"})
		return
	}
	if d.stopping {
		d.send(rid, &wire.Message{Type: wire.MsgBye})
		return
	}
	key := sessKey{name: ch.Name, session: ch.Session}
	nw := &pushWorker{rid: rid, key: key, owner: key.owner(), capacity: m.Capacity, maxMsg: m.MaxMessage, walls: m.Walls, lastSeen: now, running: map[string]*outTask{}}
	held := map[string]wire.Held{}
	for _, h := range m.Held {
		held[h.ID] = h
	}
	if old := d.sessions[key]; old != nil {
		// The same process reconnected: keep what it still holds, release
		// what never reached it.
		for id, t := range old.running {
			if h, ok := held[id]; ok && h.Fence == t.claim.Fence {
				nw.running[id] = t
				continue
			}
			if h, ok := held[id]; ok && h.Done {
				continue // its result follows
			}
			d.core.Untrack(t.claim)
			go d.core.Release(d.bgCtx, t.claim)
		}
		nw.reserved = old.reserved
		delete(d.workers, old.rid)
		d.log.Info("worker reconnected", "worker", nw.owner, "kept", len(nw.running))
	} else {
		d.log.Info("worker registered", "worker", nw.owner, "capacity", nw.capacity, "holds", len(m.Held))
	}
	// Tasks it runs that this dispatcher does not know (it restarted):
	// adopt them if their leases are still the worker's.
	var refs []wire.Ref
	for _, h := range m.Held {
		if h.Done || nw.running[h.ID] != nil {
			continue
		}
		cl := store.Claim{TaskID: h.ID, Fence: h.Fence}
		nw.running[h.ID] = &outTask{claim: cl, adopting: true, deadline: now.Add(max(d.cfg.deadline()-h.Elapsed, d.cfg.Grace))}
		refs = append(refs, wire.Ref{ID: h.ID, Fence: h.Fence})
	}
	d.workers[rid] = nw
	d.sessions[key] = nw
	d.send(rid, &wire.Message{Type: wire.MsgWelcome, Incarnation: d.inc, Heartbeat: d.cfg.Heartbeat, Misses: d.cfg.Misses,
		Timeout: d.cfg.Limits.Timeout, MaxMessage: d.cfg.Wire.MaxMessage})
	d.free.Broadcast()
	if len(refs) > 0 {
		go func() {
			ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
			defer cancel()
			lost, err := adopt(ctx, d.core, nw.owner, refs)
			d.mu.Lock()
			defer d.mu.Unlock()
			d.adopted(key, refs, lost, err)
		}()
	}
}

// adopted tracks the reported tasks whose leases are still the worker's
// and cancels the others.
func (d *pushDispatcher) adopted(key sessKey, refs []wire.Ref, lost map[string]bool, err error) {
	w := d.sessions[key]
	if w == nil {
		return
	}
	var cancels []wire.Ref
	for _, ref := range refs {
		t := w.running[ref.ID]
		if t == nil || !t.adopting || t.claim.Fence != ref.Fence {
			continue
		}
		if err != nil || lost[ref.ID] {
			delete(w.running, ref.ID)
			cancels = append(cancels, ref)
			continue
		}
		t.adopting = false
		d.track(w, t)
	}
	if err != nil {
		d.rlog.Warn("adopt", "could not check the tasks a worker reported; cancelling them", "worker", w.owner, "err", err)
	} else if n := len(refs) - len(cancels); n > 0 {
		d.log.Info("adopted the tasks a worker was running", "worker", w.owner, "count", n)
	}
	if len(cancels) > 0 {
		d.send(w.rid, &wire.Message{Type: wire.MsgCancel, Cancels: cancels})
		d.free.Broadcast()
	}
}

// drop forgets a worker; its tasks are requeued (counted) if requeue, else
// just untracked.
func (d *pushDispatcher) drop(w *pushWorker, requeue bool) {
	delete(d.workers, w.rid)
	if d.sessions[w.key] == w {
		delete(d.sessions, w.key)
	}
	var claims []store.Claim
	for _, t := range w.running {
		if t.adopting {
			continue
		}
		d.core.Untrack(t.claim)
		claims = append(claims, t.claim)
	}
	w.running = nil
	if requeue {
		d.requeue(claims, "requeueing a lost worker's tasks failed; they go back when their leases expire")
	}
}

func (d *pushDispatcher) tick() {
	now := time.Now()
	silent := time.Duration(d.cfg.Misses) * d.cfg.Heartbeat
	// Channels without a worker (in their handshake, or whose worker was
	// dropped) are forgotten once idle.
	d.gate.Expire(now, func(rid string, _ *wire.Channel, idle time.Duration) bool {
		return d.workers[rid] == nil && idle > max(30*time.Second, 2*silent)
	})
	for _, w := range d.workers {
		if now.Sub(w.lastSeen) > silent {
			d.log.Warn("worker declared dead: silent too long; requeueing its tasks", "worker", w.owner,
				"silent", now.Sub(w.lastSeen).Round(time.Millisecond), "tasks", len(w.running))
			d.drop(w, true)
			continue
		}
		var late []store.Claim
		var refs []wire.Ref
		for id, t := range w.running {
			if now.After(t.deadline) {
				delete(w.running, id)
				if !t.adopting {
					late = append(late, t.claim)
				}
				refs = append(refs, t.ref())
			}
		}
		if len(refs) > 0 {
			d.log.Warn("tasks passed their deadline; requeueing them", "worker", w.owner, "count", len(refs))
			d.send(w.rid, &wire.Message{Type: wire.MsgCancel, Cancels: refs})
			d.requeue(late, "requeueing late tasks failed; they go back when their leases expire")
			d.free.Broadcast()
		}
		d.send(w.rid, &wire.Message{Type: wire.MsgHeartbeat, Free: 0})
	}
	sandboxes, busy := 0, 0
	var walls []string
	for _, w := range d.workers {
		sandboxes += w.capacity
		busy += len(w.running)
		walls = append(walls, wallsOf(w.walls))
	}
	d.view.set(sandboxes, busy, walls)
}

func (d *pushDispatcher) flushAcks() {
	for _, w := range d.workers {
		d.flushAcksOf(w)
	}
}

func (d *pushDispatcher) flushAcksOf(w *pushWorker) {
	if len(w.acks) == 0 {
		return
	}
	d.send(w.rid, &wire.Message{Type: wire.MsgAck, Acks: w.acks})
	w.acks = nil
}

// giveBack cancels the tasks still out with workers and returns their
// claims, to be released (not counted as attempts).
func (d *pushDispatcher) giveBack() []store.Claim {
	var left []store.Claim
	ids := make([]string, 0, len(d.workers))
	for rid := range d.workers {
		ids = append(ids, rid)
	}
	sort.Strings(ids)
	for _, rid := range ids {
		w := d.workers[rid]
		var refs []wire.Ref
		for id, t := range w.running {
			refs = append(refs, t.ref())
			delete(w.running, id)
			if !t.adopting {
				left = append(left, t.claim)
			}
		}
		if len(refs) > 0 {
			d.send(rid, &wire.Message{Type: wire.MsgCancel, Cancels: refs})
		}
	}
	return left
}
