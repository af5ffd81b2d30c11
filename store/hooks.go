package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Completion webhooks. A task created with a CallbackURL is, the moment it
// becomes final (whichever way: result, cancellation, lost worker), put in
// the hooks set due at once and marked callback_state pending, in the
// script that makes it final (lua/lib.lua, faas_finish); nothing is lost
// if the process that made it final dies right after. Deliverers (see
// package hooks) claim due entries with ClaimDeliveries, each under a lease
// (a claimed entry is due again at the lease's expiry, so a crashed
// deliverer's webhook is retried by another), post them and record the
// outcome with RecordDelivery, which accepts only the latest claim's.

// Delivery is a claimed webhook delivery: the task, and the attempt number
// this claim is (1 the first; the token RecordDelivery checks).
type Delivery struct {
	TaskID  string
	Attempt int
}

// DeliveryOutcome is what became of a delivery attempt.
type DeliveryOutcome string

// The outcomes RecordDelivery takes.
const (
	// Delivered: the receiver answered 2xx.
	Delivered DeliveryOutcome = "delivered"
	// RetryDelivery: it did not; try again at DeliveryRecord.NextAt.
	RetryDelivery DeliveryOutcome = "retry"
	// Undeliverable: it did not, and the deliverer gives up.
	Undeliverable DeliveryOutcome = "undeliverable"
)

// DeliveryRecord is the outcome of one delivery attempt.
type DeliveryRecord struct {
	Outcome DeliveryOutcome
	At      time.Time // when the attempt ended
	NextAt  time.Time // RetryDelivery: when the next attempt is due
	Error   string    // why it failed ("" for Delivered)
}

// maxErrorText bounds the error text kept on a task.
const maxErrorText = 500

// ClaimDeliveries claims up to n webhook deliveries due at now, each until
// now+lease (no other deliverer gets them meanwhile), and returns them with
// the due time of the earliest entry left (zero if none).
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Delivery, time.Time, error) {
	if n <= 0 || lease <= 0 {
		return nil, time.Time{}, fmt.Errorf("store: claim deliveries: n and lease must be positive")
	}
	// The due entries are read first, to pass the script their task keys;
	// it claims those still due.
	ids, earliest, err := s.dueEntries(ctx, s.keys.hooks(), now, int64(n))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: claim deliveries: %w", err)
	}
	if len(ids) == 0 {
		return nil, earliest, nil
	}
	keys := make([]string, 0, 1+len(ids))
	keys = append(keys, s.keys.hooks())
	args := make([]any, 0, 2+len(ids))
	args = append(args, now.UnixMilli(), now.Add(lease).UnixMilli())
	for _, id := range ids {
		keys = append(keys, s.keys.task(id))
		args = append(args, id)
	}
	res, err := scriptHooksClaim.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: claim deliveries: %w", err)
	}
	if len(res) != 2 {
		return nil, time.Time{}, fmt.Errorf("store: claim deliveries: unexpected script reply of %d items", len(res))
	}
	rows, _ := res[0].([]any)
	out := make([]Delivery, 0, len(rows))
	for _, r := range rows {
		row, _ := r.([]any)
		if len(row) != 2 {
			return out, time.Time{}, fmt.Errorf("store: claim deliveries: unexpected row %v", r)
		}
		id, _ := row[0].(string)
		attempt, _ := row[1].(int64)
		out = append(out, Delivery{TaskID: id, Attempt: int(attempt)})
	}
	var next time.Time
	if ms, _ := res[1].(int64); ms >= 0 {
		next = time.UnixMilli(ms)
	}
	return out, next, nil
}

// RecordDelivery records the outcome of claim d. It returns false if the
// claim is stale (the entry was claimed again since, after this claim's
// lease expired) or the task is gone; nothing is recorded then.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery, r DeliveryRecord) (bool, error) {
	switch r.Outcome {
	case Delivered, RetryDelivery, Undeliverable:
	default:
		return false, fmt.Errorf("store: record delivery of %s: unknown outcome %q", d.TaskID, r.Outcome)
	}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	next := int64(0)
	if r.Outcome == RetryDelivery {
		next = r.NextAt.UnixMilli()
	}
	errText := r.Error
	if len(errText) > maxErrorText {
		errText = errText[:maxErrorText]
	}
	n, err := scriptHooksRecord.Run(ctx, s.rdb, []string{s.keys.hooks(), s.keys.stats(), s.keys.task(d.TaskID)},
		d.TaskID, strconv.Itoa(d.Attempt), string(r.Outcome), r.At.UnixMilli(), next, errText).Int()
	if err != nil {
		return false, fmt.Errorf("store: record delivery of %s: %w", d.TaskID, err)
	}
	return n == 1, nil
}

// SubscribeHooks delivers the ids of the tasks whose webhook was just
// queued, until ctx is done or stop is called (like SubscribeTasks): a
// deliverer waiting for work claims at once. A message lost only delays a
// delivery to the deliverer's next poll.
func (s *Store) SubscribeHooks(ctx context.Context) (ids <-chan string, stop func()) {
	return s.subscribe(ctx, s.keys.hooksChannel())
}

// PendingDeliveries is the number of webhooks waiting to be delivered
// (due, waiting for a retry, or being delivered now).
func (s *Store) PendingDeliveries(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.hooks()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: pending deliveries: %w", err)
	}
	return n, nil
}
