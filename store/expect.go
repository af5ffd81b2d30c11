package store

import "time"

// An API that creates a task is usually the one its client asks for the
// result, a moment later. The Waiter remembers the tasks this process
// created (Expect) until their done message comes, and keeps the final
// tasks those messages carried for a few seconds, so that GET /result of a
// task this process created needs no Redis read: a fresh result is answered
// from the message, and a task still running is waited for without
// reading it first. Anything else (another API created the task, the
// message carried only the id, the subscription was re-established and
// messages may have been lost, an entry aged out) reads Redis as before.
const (
	expectFor      = 2 * time.Minute  // a task not final by then is read from Redis
	expectMax      = 100_000          // tasks remembered at most
	finalsFor      = 10 * time.Second // at most; a quarter of the result TTL if that is shorter
	finalsMaxBytes = 8 << 20
)

type aged struct {
	id string
	at time.Time
}

// memo is what Expect and the done messages leave behind; the Waiter's
// mutex guards it.
type memo struct {
	expected   map[string]string // task id -> owner
	expOrder   []aged
	finals     map[string]string // task id -> the done message's record
	finOrder   []aged
	finBytes   int
	finalsKeep time.Duration
}

func newMemo(ttl time.Duration) memo {
	keep := finalsFor
	if ttl > 0 && ttl/4 < keep {
		keep = ttl / 4
	}
	return memo{expected: map[string]string{}, finals: map[string]string{}, finalsKeep: keep}
}

func (m *memo) prune(now time.Time) {
	for len(m.expOrder) > 0 && (now.Sub(m.expOrder[0].at) > expectFor || len(m.expOrder) > expectMax) {
		delete(m.expected, m.expOrder[0].id)
		m.expOrder = m.expOrder[1:]
	}
	for len(m.finOrder) > 0 && (now.Sub(m.finOrder[0].at) > m.finalsKeep || m.finBytes > finalsMaxBytes) {
		id := m.finOrder[0].id
		m.finBytes -= len(m.finals[id])
		delete(m.finals, id)
		m.finOrder = m.finOrder[1:]
	}
}

// done notes the done message of id.
func (m *memo) done(id, record string, now time.Time) {
	if _, ok := m.expected[id]; !ok {
		return
	}
	delete(m.expected, id) // its entry in expOrder ages out
	if record == "" || m.finalsKeep <= 0 {
		return
	}
	m.finals[id] = record
	m.finBytes += len(record)
	m.finOrder = append(m.finOrder, aged{id, now})
	m.prune(now)
}

// Expect notes that this process is creating task id of owner ("" the
// default tenant), so that its done message is kept for Final. Call it
// before the task exists (its done message may come before Enqueue
// returns), and Forget if it is not created after all.
func (w *Waiter) Expect(id, owner string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.memo.expected[id] = owner
	w.memo.expOrder = append(w.memo.expOrder, aged{id, now})
	w.memo.prune(now)
}

// Forget undoes Expect for a task that was not created.
func (w *Waiter) Forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.memo.expected, id)
}

// Expecting reports whether this process created task id (Expect) and has
// not seen its done message since, with its owner.
func (w *Waiter) Expecting(id string) (owner string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	owner, ok = w.memo.expected[id]
	return owner, ok
}

// Final returns the final task of a done message this process received
// for a task it created, if it still keeps it.
func (w *Waiter) Final(id string) (Task, bool) {
	w.mu.Lock()
	now := time.Now()
	w.memo.prune(now)
	record, ok := w.memo.finals[id]
	w.mu.Unlock()
	if !ok {
		return Task{}, false
	}
	return recordTask(id, record)
}
