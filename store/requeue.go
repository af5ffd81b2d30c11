package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Requeue takes the given claims away at once, as if
// their leases had just expired: used when the worker running them is known
// to be gone (declared dead, past its deadline) so that the tasks need not
// wait out their leases. A task still RUNNING under that fence with its
// lease present goes back to the consumer end of its tenant's queue with the attempt
// counted, or FAILS with kind WORKER_LOST when it has used its MaxAttempts;
// any other claim (completed, reaped, released, claimed again) is left
// alone. A result reported later under a requeued fence is stale and
// Complete rejects it. It returns the ids requeued and failed.
func (s *Store) Requeue(ctx context.Context, claims []Ref) (requeued, failed []string, err error) {
	if len(claims) == 0 {
		return nil, nil, nil
	}
	result, errJSON, err := s.workerLost()
	if err != nil {
		return nil, nil, fmt.Errorf("store: requeue: %w", err)
	}
	now := time.Now().UnixMilli()
	keys := s.keys.tenancy(s.keys.leases(), s.keys.stats(), s.keys.hooks())
	args := make([]any, 0, 7+3*len(claims))
	args = append(args, now, s.maxAttempts, s.keys.doneChannel(), result, errJSON, s.ttlMS, s.capped())
	for _, r := range claims {
		keys = append(keys, s.keys.task(r.TaskID), s.keys.tenantQueue(r.Owner))
		args = append(args, r.TaskID, strconv.FormatInt(r.Fence, 10), r.Owner)
	}
	res, err := scriptRequeue.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("store: requeue %d claims: %w", len(claims), err)
	}
	if len(res) != 2 {
		return nil, nil, fmt.Errorf("store: requeue: unexpected script reply of %d items", len(res))
	}
	return strs(res[0]), strs(res[1]), nil
}
