package dispatch

// Push mode: a ROUTER socket; push workers connect with DEALER, say HELLO,
// get a CHALLENGE, and REGISTER with their capacity on the channel that
// opens (sealed: the worker's proof that it holds the worker secret; see
// wire.go); the dispatcher claims exactly as many tasks as there are free
// slots (one claim at a time, for the worker with the most free slots,
// woken by Core.Wait when the queue ran dry) and sends them. Every message
// after the CHALLENGE is sealed both ways; one that does not verify on its
// connection's channel is dropped before it is looked at.
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
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/wasmfaas/wasmfaas/store"
)

// maxCapacity bounds the slots one worker may announce.
const maxCapacity = 4096

// pushChan is the channel of one worker connection.
type pushChan struct {
	*Channel
	lastUsed time.Time
}

type pendingRef struct {
	rid string
	ch  *pushChan
}

type pushWorker struct {
	rid      string // ZeroMQ routing id of its connection
	key      sessKey
	owner    string
	capacity int
	maxMsg   int // the largest message it takes (0: not said)
	draining bool
	lastSeen time.Time
	running  map[string]*outTask
	reserved int // slots a claim in flight is for
	acks     []Ack
}

func (w *pushWorker) free() int {
	if w.draining {
		return 0
	}
	return w.capacity - len(w.running) - w.reserved
}

type inbound struct {
	rid   string
	frame []byte
	bad   string // why the message is malformed, if it is
}

type claimReq struct {
	key   sessKey
	owner string
	n     int
	wakes uint64 // Core.Wakes when the claim started
}

type claimRes struct {
	req    claimReq
	claims []store.Claim
	err    error
}

type adoptRes struct {
	key  sessKey
	refs []Ref
	lost map[string]bool
	err  error
}

type outbound struct {
	rid   string
	frame []byte
}

type pushDispatcher struct {
	cfg  RemoteConfig
	core *Core
	log  *slog.Logger
	rlog *rateLog
	sock zmq4.Socket
	inc  ID16

	workers  map[string]*pushWorker // by routing id
	sessions map[sessKey]*pushWorker
	chans    map[string]*pushChan // by routing id
	pending  int                  // channels that proved nothing yet
	pendingQ []pendingRef         // the order they came in (with stale entries)

	in        chan inbound
	out       chan outbound
	claimRes  chan claimRes
	claimWake chan struct{}
	adopted   chan adoptRes
	acked     chan completedAck
	lostMu    sync.Mutex
	lost      []Ref // leases Core found gone
	lostWake  chan struct{}

	claims   int  // claims in flight
	dry      bool // the queue ran dry (or Redis failed): wait for claimWake
	backoff  time.Duration
	stopping bool
	comp     *completer
	bgCtx    context.Context
	bg       sync.WaitGroup
	spawned  sync.WaitGroup // claims and waits for work
	view     *nodeView
}

type completedAck struct {
	key sessKey
	ack Ack
}

// RunPush is push mode: it serves push workers on cfg.Listen until ctx
// ends, then drains (see the file comment).
func RunPush(ctx context.Context, cfg RemoteConfig) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	view := &nodeView{mode: "push", limits: cfg.Limits}
	if cfg.Describe == nil {
		cfg.Describe = view.describe
	}
	core, err := NewCore(cfg.Config)
	if err != nil {
		return err
	}
	bgCtx, stopBg := context.WithCancel(context.Background())
	d := &pushDispatcher{
		cfg: cfg, core: core, log: core.log.With("mode", "push"), rlog: newRateLog(core.log.With("mode", "push"), 10*time.Second),
		inc: NewID16(), workers: map[string]*pushWorker{}, sessions: map[sessKey]*pushWorker{}, chans: map[string]*pushChan{},
		in: make(chan inbound, 256), out: make(chan outbound, 4096),
		claimRes: make(chan claimRes, maxClaims), claimWake: make(chan struct{}, 1), backoff: 50 * time.Millisecond,
		adopted: make(chan adoptRes, 16), acked: make(chan completedAck, 1024), lostWake: make(chan struct{}, 1),
		bgCtx: bgCtx, view: view,
	}
	defer func() { stopBg(); d.bg.Wait() }()
	if err := core.Start(bgCtx, &d.bg); err != nil {
		return err
	}
	sock, err := ListenRouter(bgCtx, cfg.Listen, cfg.Wire)
	if err != nil {
		return fmt.Errorf("dispatch: push: listen on %s: %w", cfg.Listen, err)
	}
	d.sock = sock
	if cfg.Bound != nil {
		cfg.Bound(sock.Addr())
	}
	cfg.logAdmission(d.log, sock.Addr())
	d.comp = newCompleter(bgCtx, core, 8, func(k sessKey, a Ack) {
		select {
		case d.acked <- completedAck{k, a}:
		case <-bgCtx.Done():
		}
	})
	var loops, sender sync.WaitGroup
	loops.Add(1)
	sender.Add(1)
	go func() { defer loops.Done(); d.recvLoop(bgCtx) }()
	go func() { defer sender.Done(); d.sendLoop() }()
	d.log.Info("dispatcher ready", "name", cfg.Name, "listen", sock.Addr().String(), "heartbeat", cfg.Heartbeat,
		"misses", cfg.Misses, "deadline", cfg.deadline(), "max_message", cfg.Wire.MaxMessage)

	d.loop(ctx)

	// The loop has cancelled and released what was still out. Let results
	// being recorded finish (for a moment: Core.Complete waits for Redis),
	// give back claims that were in flight, and acknowledge what got
	// recorded before saying the last words.
	compDone := make(chan struct{})
	go func() { d.comp.close(); close(compDone) }()
	giveUp := time.NewTimer(2 * time.Second)
	defer giveUp.Stop()
	for compDone != nil || d.claims > 0 {
		select {
		case a := <-d.acked:
			if w := d.sessions[a.key]; w != nil {
				w.acks = append(w.acks, a.ack)
			}
		case r := <-d.claimRes:
			d.claims--
			for _, cl := range r.claims {
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				core.Release(rctx, cl)
				cancel()
			}
		case <-giveUp.C:
			stopBg()
		case <-compDone:
			compDone = nil
		}
	}
	d.flushAcks()
	for rid := range d.workers {
		d.send(rid, &Message{Type: MsgBye})
	}
	close(d.out)
	sender.Wait()
	stopBg() // first, so that the loops take the socket's end for the end
	sock.Close()
	loops.Wait()
	d.log.Info("dispatcher stopped")
	d.spawned.Wait()
	return nil
}

func (d *pushDispatcher) recvLoop(ctx context.Context) {
	for {
		m, err := d.sock.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.rlog.Warn("recv", "receiving failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		in := inbound{}
		switch {
		case len(m.Frames) == 2:
			in.rid, in.frame = string(m.Frames[0]), m.Frames[1]
		case len(m.Frames) > 0:
			in.rid, in.bad = string(m.Frames[0]), fmt.Sprintf("%d frames instead of 1", len(m.Frames)-1)
		default:
			continue
		}
		select {
		case d.in <- in:
		case <-ctx.Done():
			return
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

// send sends m to a worker connection: sealed on its channel once the
// worker has proved itself on it, open before (CHALLENGE, ERROR).
func (d *pushDispatcher) send(rid string, m *Message) {
	if ch := d.chans[rid]; ch != nil && ch.Proved() && m.Type.sealing() != openOnly {
		d.out <- outbound{rid, ch.Seal(m)}
		return
	}
	if m.Type.sealing() == sealedOnly {
		d.rlog.Warn("unsealed", "not sending a message to a connection without a channel", "type", m.Type)
		return
	}
	d.out <- outbound{rid, m.Encode(nil)}
}

// maxClaims bounds the claims in flight at once (each for one worker's
// free slots), so that a free slot is filled without waiting for another
// worker's claim.
const maxClaims = 4

func (d *pushDispatcher) claim(req claimReq) {
	defer d.spawned.Done()
	claims, err := d.core.ClaimFor(d.bgCtx, req.owner, req.n)
	d.claimRes <- claimRes{req, claims, err}
}

// waitForWork runs once the queue ran dry (or Redis failed): it waits for
// a task announced since the claim that came back short started
// (Core.WaitSince: claims run concurrently, and one that looked at the
// queue before a task came may come back after a newer claim's wait was
// woken by it), or for the back-off, then lets claims resume.
func (d *pushDispatcher) waitForWork(failed bool, backoff time.Duration, wakes uint64) {
	defer d.spawned.Done()
	if failed {
		select {
		case <-d.bgCtx.Done():
		case <-time.After(backoff):
		}
	} else {
		d.core.WaitSince(d.bgCtx, wakes)
	}
	select {
	case d.claimWake <- struct{}{}:
	default:
	}
}

func (d *pushDispatcher) loop(ctx context.Context) {
	hb := time.NewTicker(d.cfg.Heartbeat)
	defer hb.Stop()
	// Acknowledgements go out in batches, at most 20ms after a result was
	// recorded; the timer runs only while some wait.
	var ackTimer <-chan time.Time
	done := ctx.Done()
	var drainEnd <-chan time.Time
	for {
		select {
		case <-done:
			done = nil
			d.stopping = true
			d.log.Info("dispatcher stopping", "running", d.running(), "drain", d.cfg.Drain)
			t := time.NewTimer(d.cfg.Drain)
			defer t.Stop()
			drainEnd = t.C
		case <-drainEnd:
			d.log.Warn("stopping the tasks still running; they go back to the queue", "running", d.running())
			d.giveBack()
			return
		case m := <-d.in:
			d.handle(m)
		case r := <-d.claimRes:
			d.claimed(r)
		case <-d.claimWake:
			d.dry = false
		case a := <-d.adopted:
			d.adoptDone(a)
		case a := <-d.acked:
			if w := d.sessions[a.key]; w != nil {
				w.acks = append(w.acks, a.ack)
				if len(w.acks) >= 256 {
					d.flushAcksOf(w)
				} else if ackTimer == nil {
					ackTimer = time.After(20 * time.Millisecond)
				}
			}
		case <-d.lostWake:
			d.leasesLost()
		case <-ackTimer:
			ackTimer = nil
			d.flushAcks()
		case <-hb.C:
			d.tick()
		}
		if d.stopping {
			if d.running() == 0 && d.claims == 0 && d.comp.pending() == 0 {
				d.giveBack()
				return
			}
		} else {
			d.maybeClaim()
		}
	}
}

func (d *pushDispatcher) running() int {
	n := 0
	for _, w := range d.workers {
		n += len(w.running)
	}
	return n
}

// maybeClaim starts claims for the workers with the most free slots,
// each for all of that worker's free slots, unless the queue ran dry.
func (d *pushDispatcher) maybeClaim() {
	for !d.stopping && !d.dry && d.claims < maxClaims {
		var best *pushWorker
		for _, w := range d.workers {
			if w.free() > 0 && (best == nil || w.free() > best.free()) {
				best = w
			}
		}
		if best == nil {
			return
		}
		n := best.free()
		best.reserved += n
		d.claims++
		d.spawned.Add(1)
		go d.claim(claimReq{key: best.key, owner: best.owner, n: n, wakes: d.core.Wakes()})
	}
}

func (d *pushDispatcher) claimed(r claimRes) {
	d.claims--
	w := d.sessions[r.req.key]
	if w != nil {
		w.reserved = max(0, w.reserved-r.req.n)
	}
	switch {
	case r.err != nil:
		if d.bgCtx.Err() == nil {
			d.rlog.Warn("claim", "claiming tasks failed", "err", r.err)
		}
		if !d.dry {
			d.dry = true
			d.spawned.Add(1)
			go d.waitForWork(true, d.backoff, 0)
		}
		d.backoff = min(2*d.backoff, 2*time.Second)
	case len(r.claims) < r.req.n:
		d.backoff = 50 * time.Millisecond
		if !d.dry {
			d.dry = true
			d.spawned.Add(1)
			go d.waitForWork(false, 0, r.req.wakes)
		}
	default:
		d.backoff = 50 * time.Millisecond
	}
	if len(r.claims) == 0 {
		return
	}
	if w == nil || w.draining || d.stopping {
		// Its worker went away (or the dispatcher is stopping) while the
		// claim was made: give them back, not counted.
		for _, cl := range r.claims {
			go d.core.Release(d.bgCtx, cl)
		}
		return
	}
	now := time.Now()
	for _, cl := range r.claims {
		t, bad := wireTask(cl, d.cfg.Limits.Timeout, w.maxMsg)
		if bad != nil {
			d.comp.submit(w.key, WireResult{ID: cl.TaskID, Fence: cl.Fence, Result: bad})
			continue
		}
		ot := &outTask{claim: strip(cl), deadline: now.Add(d.cfg.deadline())}
		w.running[cl.TaskID] = ot
		d.track(w, ot)
		d.send(w.rid, &Message{Type: MsgTask, Tasks: []WireTask{t}})
	}
}

// track renews the claim's lease under the worker's name until it is done.
func (d *pushDispatcher) track(w *pushWorker, t *outTask) {
	ref := t.ref()
	d.core.TrackFor(t.claim, w.owner, func() {
		d.lostMu.Lock()
		d.lost = append(d.lost, ref)
		d.lostMu.Unlock()
		select {
		case d.lostWake <- struct{}{}:
		default:
		}
	})
}

// leasesLost cancels, on their workers, the tasks whose leases the store
// says are gone.
func (d *pushDispatcher) leasesLost() {
	d.lostMu.Lock()
	refs := d.lost
	d.lost = nil
	d.lostMu.Unlock()
	for _, ref := range refs {
		for _, w := range d.workers {
			if t := w.running[ref.ID]; t != nil && t.claim.Fence == ref.Fence {
				delete(w.running, ref.ID)
				d.send(w.rid, &Message{Type: MsgCancel, Cancels: []Ref{ref}})
			}
		}
	}
}

func (d *pushDispatcher) handle(in inbound) {
	if in.bad != "" {
		d.rlog.Warn("malformed", "dropped a malformed message", "err", in.bad)
		return
	}
	m, err := Decode(in.frame)
	if err != nil {
		if errors.Is(err, ErrWireVersion) {
			d.rlog.Error("version", "a worker speaks another wire version: run the same faas release on the dispatcher and its workers",
				"worker_version", FrameVersion(in.frame), "dispatcher_version", WireVersion)
			d.out <- outbound{in.rid, VersionError(FrameVersion(in.frame))}
			return
		}
		d.rlog.Warn("malformed", "dropped a malformed message", "err", err, "bytes", len(in.frame))
		return
	}
	switch {
	case m.Type == MsgHello:
		d.hello(in.rid, m)
		return
	case !m.Sealed:
		// An open ERROR or a CHALLENGE: nothing a worker sends.
		d.rlog.Warn("unexpected", "dropped a message a worker should not send", "type", m.Type)
		d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnexpected, Text: "unexpected " + m.Type.String()})
		return
	}
	ch := d.chans[in.rid]
	if ch == nil {
		// No HELLO on this connection, or its channel was forgotten.
		d.rlog.Warn("unknown", "ignored a message from a connection without a channel", "type", m.Type)
		d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnknownSession, Text: "unknown channel: say HELLO again"})
		return
	}
	first := !ch.Proved()
	if err := ch.Open(m); err != nil {
		if first {
			// The worker's proof failed: it gets nothing, and starts over.
			d.rlog.Warn("auth", "refused a worker that failed authentication (it does not hold this dispatcher's worker secret)",
				"claimed_name", ch.Name, "type", m.Type, "err", err)
			d.forget(in.rid)
			d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnauthorized, Text: d.unauthorized()})
			return
		}
		d.rlog.Warn("auth", "dropped a message that failed authentication (forged, replayed or corrupted)", "worker", ch.Name, "type", m.Type, "err", err)
		return
	}
	ch.lastUsed = time.Now()
	if first {
		d.pending--
		if m.Type != MsgRegister {
			d.rlog.Warn("unexpected", "dropped a message before the registration", "type", m.Type)
			d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnknownSession, Text: "register first"})
			return
		}
		d.register(in.rid, ch, m)
		return
	}
	w := d.workers[in.rid]
	if w == nil {
		// Dead, superseded or never registered: ignore what it says, and
		// tell it to register again.
		d.rlog.Warn("unknown", "ignored a message from an unknown or dead worker connection", "type", m.Type)
		switch m.Type {
		case MsgHeartbeat, MsgResult, MsgRelease, MsgDrain:
			d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnknownSession, Text: "unknown session: register again"})
		}
		return
	}
	if m.Type == MsgRegister {
		d.rlog.Warn("unexpected", "dropped a second registration on a connection", "worker", w.owner)
		d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnexpected, Text: "already registered"})
		return
	}
	w.lastSeen = time.Now()
	switch m.Type {
	case MsgHeartbeat:
	case MsgResult:
		r := m.Results[0]
		if t := w.running[r.ID]; t != nil && t.claim.Fence == r.Fence {
			delete(w.running, r.ID)
		}
		d.comp.submit(w.key, r)
	case MsgRelease:
		for _, ref := range m.Released {
			if t := w.running[ref.ID]; t != nil && t.claim.Fence == ref.Fence {
				delete(w.running, ref.ID)
				go d.core.Release(d.bgCtx, t.claim)
			}
		}
	case MsgDrain:
		w.draining = true
		d.log.Info("worker draining", "worker", w.owner, "running", len(w.running))
	case MsgBye:
		d.log.Info("worker left", "worker", w.owner, "running", len(w.running))
		d.drop(w, true)
	default:
		d.rlog.Warn("unexpected", "dropped a message a worker should not send", "type", m.Type)
		d.send(in.rid, &Message{Type: MsgError, Code: ErrCodeUnexpected, Text: "unexpected " + m.Type.String()})
	}
}

func (d *pushDispatcher) unauthorized() string {
	if len(d.cfg.Secret) == 0 {
		return "worker authentication failed: this dispatcher has no worker secret, and the worker sealed with one"
	}
	return "worker authentication failed: the worker does not hold this dispatcher's worker secret"
}

// hello answers a HELLO with a CHALLENGE that opens a new channel on the
// connection (see wire.go).
func (d *pushDispatcher) hello(rid string, m *Message) {
	if err := CheckHello(m); err != nil {
		d.rlog.Warn("malformed", "refused a malformed HELLO", "err", err)
		d.send(rid, &Message{Type: MsgError, Code: ErrCodeMalformed, Text: "bad HELLO: " + err.Error()})
		return
	}
	if w := d.workers[rid]; w != nil {
		// A connection starting over: what it held is given back.
		d.log.Info("a worker said HELLO again on its connection; its tasks go back to the queue", "worker", w.owner, "running", len(w.running))
		d.drop(w, true)
	}
	d.forget(rid)
	for d.pending >= maxPending && len(d.pendingQ) > 0 {
		// Too many connections that proved nothing: the oldest goes.
		p := d.pendingQ[0]
		d.pendingQ = d.pendingQ[1:]
		if d.chans[p.rid] == p.ch && !p.ch.Proved() {
			d.rlog.Warn("pending", "too many workers in their handshake; forgetting the oldest", "max", maxPending)
			d.forget(p.rid)
		}
	}
	nonce := NewNonce()
	ch := &pushChan{Channel: DispatcherChannel(d.cfg.Secret, m, NewID16(), nonce), lastUsed: time.Now()}
	d.chans[rid] = ch
	d.pending++
	d.pendingQ = append(d.pendingQ, pendingRef{rid, ch})
	if len(d.pendingQ) > 4*maxPending {
		q := d.pendingQ[:0]
		for _, p := range d.pendingQ {
			if d.chans[p.rid] == p.ch && !p.ch.Proved() {
				q = append(q, p)
			}
		}
		clear(d.pendingQ[len(q):])
		d.pendingQ = q
	}
	d.send(rid, &Message{Type: MsgChallenge, Channel: ch.ID, Nonce: nonce, Secured: len(d.cfg.Secret) > 0})
}

// forget drops a connection's channel (not its worker).
func (d *pushDispatcher) forget(rid string) {
	if ch := d.chans[rid]; ch != nil {
		if !ch.Proved() {
			d.pending--
		}
		delete(d.chans, rid)
	}
}

// register admits the worker that proved itself on channel ch.
func (d *pushDispatcher) register(rid string, ch *pushChan, m *Message) {
	if m.Capacity < 1 || m.Capacity > maxCapacity {
		d.rlog.Warn("register", "refused a malformed registration", "name", ch.Name, "capacity", m.Capacity)
		d.send(rid, &Message{Type: MsgError, Code: ErrCodeMalformed, Text: "bad registration"})
		return
	}
	if d.stopping {
		d.send(rid, &Message{Type: MsgBye})
		return
	}
	key := sessKey{name: ch.Name, session: ch.Session}
	now := time.Now()
	nw := &pushWorker{rid: rid, key: key, owner: key.owner(), capacity: m.Capacity, maxMsg: m.MaxMessage, lastSeen: now, running: map[string]*outTask{}}
	held := map[string]Held{}
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
	var refs []Ref
	for _, h := range m.Held {
		if h.Done || nw.running[h.ID] != nil {
			continue
		}
		cl := store.Claim{TaskID: h.ID, Fence: h.Fence}
		nw.running[h.ID] = &outTask{claim: cl, adopting: true, deadline: now.Add(max(d.cfg.deadline()-h.Elapsed, d.cfg.Grace))}
		refs = append(refs, Ref{ID: h.ID, Fence: h.Fence})
	}
	d.workers[rid] = nw
	d.sessions[key] = nw
	d.send(rid, &Message{Type: MsgWelcome, Incarnation: d.inc, Heartbeat: d.cfg.Heartbeat, Misses: d.cfg.Misses,
		Timeout: d.cfg.Limits.Timeout, MaxMessage: d.cfg.Wire.MaxMessage})
	if len(refs) > 0 {
		go func() {
			ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
			defer cancel()
			lost, err := adopt(ctx, d.core, nw.owner, refs)
			select {
			case d.adopted <- adoptRes{key: key, refs: refs, lost: lost, err: err}:
			case <-d.bgCtx.Done():
			}
		}()
	}
}

func (d *pushDispatcher) adoptDone(a adoptRes) {
	w := d.sessions[a.key]
	if w == nil {
		return
	}
	var cancels []Ref
	for _, ref := range a.refs {
		t := w.running[ref.ID]
		if t == nil || !t.adopting || t.claim.Fence != ref.Fence {
			continue
		}
		if a.err != nil || a.lost[ref.ID] {
			delete(w.running, ref.ID)
			cancels = append(cancels, ref)
			continue
		}
		t.adopting = false
		d.track(w, t)
	}
	if a.err != nil {
		d.rlog.Warn("adopt", "could not check the tasks a worker reported; cancelling them", "worker", w.owner, "err", a.err)
	} else if n := len(a.refs) - len(cancels); n > 0 {
		d.log.Info("adopted the tasks a worker was running", "worker", w.owner, "count", n)
	}
	if len(cancels) > 0 {
		d.send(w.rid, &Message{Type: MsgCancel, Cancels: cancels})
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
		claims = append(claims, t.claim)
		if !requeue {
			d.core.Untrack(t.claim)
		}
	}
	w.running = nil
	if requeue && len(claims) > 0 {
		for _, cl := range claims {
			d.core.Untrack(cl)
		}
		go func() {
			ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
			defer cancel()
			if err := d.core.Requeue(ctx, claims); err != nil {
				// Their leases run out instead.
				d.rlog.Warn("requeue", "requeueing a lost worker's tasks failed; they go back when their leases expire", "err", err)
			}
		}()
	}
}

func (d *pushDispatcher) tick() {
	now := time.Now()
	silent := time.Duration(d.cfg.Misses) * d.cfg.Heartbeat
	// Channels without a worker (in their handshake, or whose worker was
	// dropped) are forgotten once idle.
	for rid, ch := range d.chans {
		if d.workers[rid] == nil && now.Sub(ch.lastUsed) > max(30*time.Second, 2*silent) {
			d.forget(rid)
		}
	}
	for _, w := range d.workers {
		if now.Sub(w.lastSeen) > silent {
			d.log.Warn("worker declared dead: silent too long; requeueing its tasks", "worker", w.owner,
				"silent", now.Sub(w.lastSeen).Round(time.Millisecond), "tasks", len(w.running))
			d.drop(w, true)
			continue
		}
		var late []store.Claim
		var refs []Ref
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
			d.send(w.rid, &Message{Type: MsgCancel, Cancels: refs})
			go func() {
				ctx, cancel := context.WithTimeout(d.bgCtx, d.core.Lease())
				defer cancel()
				if err := d.core.Requeue(ctx, late); err != nil {
					d.rlog.Warn("requeue", "requeueing late tasks failed; they go back when their leases expire", "err", err)
				}
			}()
		}
		d.send(w.rid, &Message{Type: MsgHeartbeat, Free: 0})
	}
	sandboxes, busy := 0, 0
	for _, w := range d.workers {
		sandboxes += w.capacity
		busy += len(w.running)
	}
	d.view.set(sandboxes, busy)
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
	d.send(w.rid, &Message{Type: MsgAck, Acks: w.acks})
	w.acks = nil
}

// giveBack cancels the tasks still out with workers and releases them (not
// counted as attempts).
func (d *pushDispatcher) giveBack() {
	var wg sync.WaitGroup
	ids := make([]string, 0, len(d.workers))
	for rid := range d.workers {
		ids = append(ids, rid)
	}
	sort.Strings(ids)
	for _, rid := range ids {
		w := d.workers[rid]
		var refs []Ref
		for _, t := range w.running {
			refs = append(refs, t.ref())
			if t.adopting {
				continue
			}
			wg.Add(1)
			go func(cl store.Claim) { defer wg.Done(); d.core.Release(d.bgCtx, cl) }(t.claim)
		}
		if len(refs) > 0 {
			d.send(rid, &Message{Type: MsgCancel, Cancels: refs})
		}
	}
	wg.Wait()
}
