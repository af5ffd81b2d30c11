package wire

import (
	"errors"
	"time"
)

// Gate is the dispatcher's side of worker admission, the same for push and
// pull mode: it answers HELLOs with CHALLENGEs, keeps the channel each one
// opens under a key of the caller's (a push connection's routing id, a pull
// lane's channel id), bounds the channels that have proved nothing yet
// (maxPending, oldest forgotten first, so a HELLO flood costs little), and
// opens the sealed messages that arrive, telling a worker's failed proof
// (the channel is forgotten; answer ERROR UNAUTHORIZED with Refusal) from a
// failure on an established channel (drop the message).
//
// A Gate is not safe for concurrent use: the dispatcher calls it under the
// lock that guards its own bookkeeping.
type Gate[K comparable] struct {
	secret  []byte
	chans   map[K]*gated
	pending int          // channels that proved nothing yet
	order   []pending[K] // the order they came in (with stale entries)
}

type gated struct {
	ch       *Channel
	lastUsed time.Time
}

type pending[K comparable] struct {
	key K
	ch  *Channel
}

// Gate errors (Open).
var (
	// ErrUnknownChannel: no channel under the key (no HELLO, or the channel
	// was forgotten): the worker must say HELLO again.
	ErrUnknownChannel = errors.New("wire: unknown channel")
	// ErrRefused: the first sealed message of a channel did not verify, so
	// the worker does not hold the secret; the channel is forgotten.
	ErrRefused = errors.New("wire: worker failed authentication")
)

// NewGate returns a Gate for a dispatcher with secret (empty: open
// admission, see auth.go).
func NewGate[K comparable](secret []byte) *Gate[K] {
	return &Gate[K]{secret: secret, chans: map[K]*gated{}}
}

// Hello checks a HELLO and opens a channel for it: the caller files it
// under a key with Add and sends the CHALLENGE back.
func (g *Gate[K]) Hello(m *Message) (*Channel, *Message, error) {
	if err := CheckHello(m); err != nil {
		return nil, nil, err
	}
	nonce := NewNonce()
	ch := DispatcherChannel(g.secret, m, NewID16(), nonce)
	return ch, &Message{Type: MsgChallenge, Channel: ch.ID, Nonce: nonce, Secured: len(g.secret) > 0}, nil
}

// Add files ch (from Hello) under key, replacing what was there, and
// forgets the oldest channels that proved nothing while there are too many.
// It reports how many it forgot.
func (g *Gate[K]) Add(key K, ch *Channel, now time.Time) (evicted int) {
	g.Forget(key)
	for g.pending >= maxPending && len(g.order) > 0 {
		p := g.order[0]
		g.order = g.order[1:]
		if e := g.chans[p.key]; e != nil && e.ch == p.ch && !p.ch.Proved() {
			g.Forget(p.key)
			evicted++
		}
	}
	g.chans[key] = &gated{ch: ch, lastUsed: now}
	g.pending++
	g.order = append(g.order, pending[K]{key, ch})
	if len(g.order) > 4*maxPending {
		q := g.order[:0]
		for _, p := range g.order {
			if e := g.chans[p.key]; e != nil && e.ch == p.ch && !p.ch.Proved() {
				q = append(q, p)
			}
		}
		clear(g.order[len(q):])
		g.order = q
	}
	return evicted
}

// Open verifies a sealed message m that arrived under key. first says it is
// the channel's first: the worker's proof (on a failure the channel is
// forgotten and the error is ErrRefused). Any other error means the
// message must not be looked at.
func (g *Gate[K]) Open(key K, m *Message, now time.Time) (ch *Channel, first bool, err error) {
	e := g.chans[key]
	if e == nil {
		return nil, false, ErrUnknownChannel
	}
	first = !e.ch.Proved()
	if err := e.ch.Open(m); err != nil {
		if first {
			g.Forget(key)
			return e.ch, true, errors.Join(ErrRefused, err)
		}
		return e.ch, false, err
	}
	e.lastUsed = now
	if first {
		g.pending--
	}
	return e.ch, first, nil
}

// Get is the channel under key (nil if none).
func (g *Gate[K]) Get(key K) *Channel {
	if e := g.chans[key]; e != nil {
		return e.ch
	}
	return nil
}

// Forget drops the channel under key, if any.
func (g *Gate[K]) Forget(key K) {
	if e := g.chans[key]; e != nil {
		if !e.ch.Proved() {
			g.pending--
		}
		delete(g.chans, key)
	}
}

// Expire forgets the channels for which stale, given how long they have
// been idle, says so.
func (g *Gate[K]) Expire(now time.Time, stale func(key K, ch *Channel, idle time.Duration) bool) {
	for key, e := range g.chans {
		if stale(key, e.ch, now.Sub(e.lastUsed)) {
			g.Forget(key)
		}
	}
}

// Pending is the number of channels that proved nothing yet.
func (g *Gate[K]) Pending() int { return g.pending }

// Refusal is the text of the ERROR UNAUTHORIZED answering a failed proof.
func (g *Gate[K]) Refusal() string {
	if len(g.secret) == 0 {
		return "worker authentication failed: this dispatcher has no worker secret, and the worker sealed with one"
	}
	return "worker authentication failed: the worker does not hold this dispatcher's worker secret"
}
