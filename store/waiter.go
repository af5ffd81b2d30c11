package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Waiter lets many goroutines wait for tasks to become final over one
// shared subscription to the done channel.
//
// A wake-up is a hint to re-read the task, never a statement that it is
// final: besides the done message for its id, every waiter is woken when the
// subscription is (re)established, since messages published while it was
// down are lost. The correct use is
//
//	for {
//		ch, stop := w.Wait(id)  // register first,
//		t := read the task      // then read, so no completion is missed
//		if final(t) { stop(); break }
//		select { case <-ch: case <-ctx.Done(): stop(); return }
//	}
type Waiter struct {
	ps    *redis.PubSub
	log   *slog.Logger
	ready chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	waiting map[string]map[*Wakeup]struct{}
	closed  bool
	memo    memo // see expect.go

	readyOnce, closeOnce sync.Once
}

// NewWaiter subscribes to the done channel. The subscription lives until
// Close is called or ctx is done; it reconnects by itself if Redis goes
// away.
func (s *Store) NewWaiter(ctx context.Context) *Waiter {
	w := &Waiter{
		ps:      s.rdb.Subscribe(ctx, s.keys.doneChannel()),
		log:     s.log,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		waiting: make(map[string]map[*Wakeup]struct{}),
		memo:    newMemo(time.Duration(s.ttlMS) * time.Millisecond),
	}
	go func() {
		defer w.Close()
		readSubscription(ctx, w.ps, w.done, func(m any) {
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					w.readyOnce.Do(func() { close(w.ready) })
					w.wakeAll()
				}
			case *redis.Message:
				id, record, _ := strings.Cut(m.Payload, "\n")
				w.wake(id, record)
			}
		})
	}()
	return w
}

// subscriptionCheck is how long a subscription may stay quiet before its
// reader pings (a ping that cannot be written makes go-redis connect and
// subscribe again), as go-redis' own channels do.
const subscriptionCheck = 3 * time.Second

// readSubscription reads ps until it is closed, done is closed or ctx ends,
// and calls fn with each message and subscription confirmation, on this
// goroutine. It is go-redis' PubSub.Channel without its two goroutines
// and channel: a message reaches fn on the goroutine that read it off the
// connection, where it took two more goroutine hand-offs (each a thread
// woken on another core, at light load) to get to a Waiter's waiter or a
// dispatcher's claim loop. go-redis connects and subscribes again by
// itself when a read or the ping fails; fn then gets a confirmation.
func readSubscription(ctx context.Context, ps *redis.PubSub, done <-chan struct{}, fn func(m any)) {
	stopped := func() bool {
		select {
		case <-done:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	// The reads are bounded by subscriptionCheck, not by ctx: close ps to
	// end one at once.
	watch := make(chan struct{})
	defer close(watch)
	go func() {
		select {
		case <-ctx.Done():
			_ = ps.Close()
		case <-done:
		case <-watch:
		}
	}()
	errs := 0
	for !stopped() {
		m, err := ps.ReceiveTimeout(ctx, subscriptionCheck)
		if err != nil {
			if errors.Is(err, redis.ErrClosed) || stopped() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_ = ps.Ping(pctx)
				cancel()
				continue
			}
			if errs > 0 {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-done:
				case <-ctx.Done():
				}
			}
			errs++
			continue
		}
		errs = 0
		fn(m)
	}
}

// Ready is closed once the subscription has been confirmed the first time.
func (w *Waiter) Ready() <-chan struct{} { return w.ready }

// Wait registers interest in task id. The returned channel is closed when
// the task may have become final (see Waiter); stop unregisters and must be
// called when the caller gives up waiting (it is safe to call it more than
// once or after a wake-up). After Close, the channel is never closed.
func (w *Waiter) Wait(id string) (<-chan struct{}, func()) {
	wk, stop := w.WaitTask(id)
	return wk.C, stop
}

// Wakeup is one registration of WaitTask: C is closed at the wake-up, and
// then Task says what the done message carried.
type Wakeup struct {
	C      <-chan struct{}
	ch     chan struct{}
	id     string
	record string // the final task's fields from the done message, if it had them
	// resubscribed: woken because the subscription was (re)established
	// (messages may have been lost), not by a done message.
	resubscribed bool
}

// Resubscribed says the wake-up came from the subscription being
// (re)established rather than from the task's done message (read it only
// after C is closed).
func (wk *Wakeup) Resubscribed() bool { return wk.resubscribed }

// Task returns the final task the done message carried (read it only after
// C is closed): false when the message had only the id (a large result)
// or the wake-up was not a done message (a reconnection), and the caller
// must read the task.
func (wk *Wakeup) Task() (Task, bool) { return recordTask(wk.id, wk.record) }

// recordTask reads the final task a done message carried ("" for none).
func recordTask(id, record string) (Task, bool) {
	if record == "" {
		return Task{}, false
	}
	pairs, ok := flatStrings(record)
	if !ok {
		if err := json.Unmarshal([]byte(record), &pairs); err != nil {
			return Task{}, false
		}
	}
	if len(pairs)%2 != 0 {
		return Task{}, false
	}
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	t, err := taskFromFields(id, m)
	if err != nil || !t.Status.Final() {
		return Task{}, false
	}
	return t, true
}

// flatStrings decodes the JSON array of strings a done message's record is
// (cjson's encoding of field/value pairs), in one pass without reflection:
// encoding/json took 6% of the API's processor time for it in a no-op
// load. It handles ASCII text with the escapes cjson writes (\" \\ \/ \b
// \f \n \r \t and \u00XX); anything else (other bytes, other \u
// escapes, numbers) is not ok, and the caller decodes with encoding/json,
// whose rules (invalid UTF-8 replaced, surrogates) then apply unchanged.
func flatStrings(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	out := make([]string, 0, 24)
	i := 1
	if s[i] == ']' {
		return out, i == len(s)-1
	}
	var b []byte
	for {
		if i >= len(s) || s[i] != '"' {
			return nil, false
		}
		i++
		start, plain := i, true
		b = b[:0]
		for {
			if i >= len(s) {
				return nil, false
			}
			c := s[i]
			if c == '"' {
				break
			}
			if c < 0x20 || c >= 0x80 {
				return nil, false
			}
			if c != '\\' {
				if !plain {
					b = append(b, c)
				}
				i++
				continue
			}
			if plain {
				b = append(b, s[start:i]...)
				plain = false
			}
			if i+1 >= len(s) {
				return nil, false
			}
			switch s[i+1] {
			case '"', '\\', '/':
				b = append(b, s[i+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				if i+5 >= len(s) || s[i+2] != '0' || s[i+3] != '0' {
					return nil, false
				}
				v, err := strconv.ParseUint(s[i+4:i+6], 16, 8)
				if err != nil || v >= 0x80 {
					return nil, false
				}
				b = append(b, byte(v))
				i += 4
			default:
				return nil, false
			}
			i += 2
		}
		if plain {
			out = append(out, s[start:i])
		} else {
			out = append(out, string(b))
		}
		i++ // the closing quote
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i++
		case ']':
			return out, i == len(s)-1
		default:
			return nil, false
		}
	}
}

// WaitTask is Wait with the final task delivered when the done message
// carried it (Wakeup.Task).
func (w *Waiter) WaitTask(id string) (*Wakeup, func()) {
	ch := make(chan struct{})
	wk := &Wakeup{C: ch, ch: ch, id: id}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return wk, func() {}
	}
	set := w.waiting[id]
	if set == nil {
		set = make(map[*Wakeup]struct{})
		w.waiting[id] = set
	}
	set[wk] = struct{}{}
	return wk, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if set, ok := w.waiting[id]; ok {
			delete(set, wk)
			if len(set) == 0 {
				delete(w.waiting, id)
			}
		}
	}
}

// Waiting is the number of task ids someone waits for.
func (w *Waiter) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}

func (w *Waiter) wake(id, record string) {
	w.mu.Lock()
	set := w.waiting[id]
	delete(w.waiting, id)
	w.memo.done(id, record, time.Now())
	w.mu.Unlock()
	for wk := range set {
		wk.record = record // before the close: readers read it after
		close(wk.ch)
	}
}

func (w *Waiter) wakeAll() {
	w.mu.Lock()
	all := w.waiting
	w.waiting = make(map[string]map[*Wakeup]struct{})
	// Done messages may have been lost while the subscription was down:
	// what this process expected is read from Redis again.
	clear(w.memo.expected)
	w.memo.expOrder = nil
	w.mu.Unlock()
	for _, set := range all {
		for wk := range set {
			wk.resubscribed = true // before the close: readers read it after
			close(wk.ch)
		}
	}
}

// Close ends the subscription and wakes everyone still waiting.
func (w *Waiter) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.done)
		if err := w.ps.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			w.log.Warn("store: close done subscription", "err", err)
		}
		w.wakeAll()
	})
}

// SubscribeTasks delivers the ids published on "Tasks" until ctx is done or
// stop is called; then the channel is closed. It returns once Redis has
// confirmed the subscription (or after 5 seconds of trying), so that every
// id published after it returns is delivered while the subscription holds.
// It is a wake-up hint for dispatchers, not a source of work (the queue
// is): ids are dropped when the reader falls more than 256 behind, and ids
// published while the subscription is down are lost. An empty id (never a
// task's) says the subscription has just been established again after it
// was down (Redis restarted, a Sentinel failover: the client subscribes
// again on the new primary by itself) or was confirmed only after
// SubscribeTasks returned: ids may have been lost before it.
func (s *Store) SubscribeTasks(ctx context.Context) (ids <-chan string, stop func()) {
	return s.subscribe(ctx, s.keys.newTasksChannel())
}

// SubscribeCancels delivers the ids of RUNNING tasks that Cancel has just
// failed, until ctx is done or stop is called, like SubscribeTasks (an
// empty id included: ids may have been lost before it). A dispatcher stops
// such a task at once; a message lost (subscription down, reader behind)
// only delays that until its next lease renewal, which finds the lease
// gone, and a dispatcher renews at once when it reads the empty id.
func (s *Store) SubscribeCancels(ctx context.Context) (ids <-chan string, stop func()) {
	return s.subscribe(ctx, s.keys.cancelChannel())
}

// SubscribeScheduled delivers the due times (unix ms, as text) of the tasks
// added to the scheduled set (delayed, or waiting for a retry), like
// SubscribeTasks: a dispatcher waiting for the next due task looks again
// (PromoteDue) when one comes earlier.
func (s *Store) SubscribeScheduled(ctx context.Context) (due <-chan string, stop func()) {
	return s.subscribe(ctx, s.keys.scheduledChannel())
}

// Resubscribed is the id SubscribeTasks and SubscribeCancels deliver when
// their subscription has been established again: messages published while
// it was down were lost.
const Resubscribed = ""

// subscribe delivers the messages of channel (see SubscribeTasks).
func (s *Store) subscribe(ctx context.Context, channel string) (ids <-chan string, stop func()) {
	out := make(chan string, 256)
	stop = s.subscribeFunc(ctx, channel, func(id string) {
		select {
		case out <- id:
		default:
		}
	}, func() { close(out) })
	return out, stop
}

// OnTasks is SubscribeTasks calling fn with each id (Resubscribed
// included) on the goroutine that reads the subscription, instead of
// delivering them on a channel: a dispatcher's wake-up is one goroutine
// hand-off sooner. fn must not block. It returns once the subscription is
// confirmed (or after 5 seconds of trying) and lasts until ctx is done or
// stop is called.
func (s *Store) OnTasks(ctx context.Context, fn func(id string)) (stop func()) {
	return s.subscribeFunc(ctx, s.keys.newTasksChannel(), fn, func() {})
}

// subscribeFunc calls fn with the messages of channel (see SubscribeTasks
// and OnTasks), and end once when it stops.
func (s *Store) subscribeFunc(ctx context.Context, channel string, fn func(id string), end func()) (stop func()) {
	ps := s.rdb.Subscribe(ctx, channel)
	// Wait for the confirmation, so that ids published after subscribe
	// returns are delivered. If it does not come, the reader below keeps
	// reconnecting by itself.
	confirmCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := ps.Receive(confirmCtx); err != nil {
		s.log.Warn("store: subscribe", "channel", channel, "err", err)
	}
	cancel()
	done := make(chan struct{})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			if err := ps.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
				s.log.Warn("store: close subscription", "channel", channel, "err", err)
			}
		})
	}
	go func() {
		defer end()
		defer stop()
		// With the subscriptions: the confirmation of a subscription after
		// the first (go-redis subscribes again by itself on a new
		// connection, to the new primary after a Sentinel failover) says
		// messages may have been lost.
		readSubscription(ctx, ps, done, func(m any) {
			switch m := m.(type) {
			case *redis.Message:
				fn(m.Payload)
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					fn(Resubscribed)
				}
			}
		})
	}()
	return stop
}
