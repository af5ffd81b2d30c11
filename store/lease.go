package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
)

// Claim is a task leased to a worker.
type Claim struct {
	TaskID       string
	FunctionID   string
	FnPayload    string // base64 text
	ParamPayload string // base64 text
	FnHash       string
	Isolation    faastype.Isolation
	// Attempt is the task's attempt number with this claim (1 on the first
	// run). A Release gives the attempt back, so two claims can share it.
	Attempt int
	// Fence is the fencing token of this claim: greater than every earlier
	// claim's of the task (the claim's time in unix milliseconds, or the
	// previous fence + 1), also after a failover lost the latest claims.
	// Pass it, with the task and owner (Ref), to Renew, Complete, Release
	// and Requeue.
	Fence int64
	// WantJSON: the caller asked for the result as JSON too.
	WantJSON bool
	// Owner is the task's tenant ("" the default one).
	Owner string
	// Bundle is the content hash of the function's bundle, "" for none
	// (GetBundle with Owner reads it).
	Bundle string
	// Retry is the task's retry policy (nil: none) and Retried the retries
	// it made so far: the dispatcher decides with them whether a failure
	// is retried (Outcome.Retry).
	Retry   *faastype.RetryPolicy
	Retried int
	// Timeout, MemoryBytes and Env are the function's own settings (zero:
	// the node's; see Settings).
	Timeout     time.Duration
	MemoryBytes uint64
	Env         []string
}

// Claim atomically pops up to n runnable tasks from the tenants' queues,
// one tenant after the other (round robin over the tenants with queued
// work, each tenant's oldest first, a requeued task first), passing over
// the tenants that have Options.MaxRunning tasks leased, skipping ids whose
// task is gone or already final (cancelled), and leases each to worker until
// now+lease: status RUNNING, started_at on the first claim, attempts+1,
// fence+1, worker recorded. Small payloads come
// back in the same script reply; large ones are read right after with one
// pipelined HMGET. (Should the reply not decode, the claims read
// so far come back with the error; the others' leases simply expire.)
func (s *Store) Claim(ctx context.Context, worker string, n int, lease time.Duration) ([]Claim, error) {
	if n <= 0 {
		return nil, nil
	}
	args, err := s.claimArgs(worker, n, lease)
	if err != nil {
		return nil, err
	}
	res, err := scriptClaim.Run(ctx, s.rdb, s.keys.tenancy(s.keys.leases()), args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("store: claim for worker %s: %w", worker, err)
	}
	return s.readClaims(ctx, worker, res)
}

// claimArgs are the claim script's arguments.
func (s *Store) claimArgs(worker string, n int, lease time.Duration) ([]any, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("store: claim: lease must be positive, got %v", lease)
	}
	now := time.Now()
	return []any{n, worker, now.UnixMilli(), now.Add(lease).UnixMilli(), s.maxRunning, stageBytes}, nil
}

// readClaims decodes the claim script's reply and reads the payloads it
// left out.
func (s *Store) readClaims(ctx context.Context, worker string, res []any) ([]Claim, error) {
	claims := make([]Claim, 0, len(res))
	var fetch []int // claims whose payloads are read apart
	for _, r := range res {
		row, ok := r.([]any)
		if !ok || len(row) != 17 {
			return claims, fmt.Errorf("store: claim for worker %s: unexpected script reply %T", worker, r)
		}
		if f, _ := row[9].(int64); f == 1 {
			fetch = append(fetch, len(claims))
		}
		attempt, _ := row[6].(int64)
		fence, _ := row[7].(int64)
		retried, _ := row[13].(int64)
		timeoutMS, _ := row[14].(int64)
		memBytes, _ := row[15].(int64)
		var env []string
		if text := str(row[16]); text != "" {
			if err := json.Unmarshal([]byte(text), &env); err != nil {
				return claims, fmt.Errorf("store: claim for worker %s: task %s: decode environment: %w", worker, str(row[0]), err)
			}
		}
		retry, err := decodeRetry(str(row[12]))
		if err != nil {
			// Written by this store; should it not decode, the task runs
			// without retries rather than not at all.
			s.log.Warn("store: claim: task has an unreadable retry policy; running it without", "task", str(row[0]), "err", err)
		}
		claims = append(claims, Claim{
			TaskID:       str(row[0]),
			FunctionID:   str(row[1]),
			FnPayload:    str(row[2]),
			ParamPayload: str(row[3]),
			FnHash:       str(row[4]),
			Isolation:    faastype.Isolation(str(row[5])),
			Attempt:      int(attempt),
			Fence:        fence,
			WantJSON:     str(row[8]) == "1",
			Owner:        str(row[10]),
			Bundle:       str(row[11]),
			Retry:        retry,
			Retried:      int(retried),
			Timeout:      time.Duration(timeoutMS) * time.Millisecond,
			MemoryBytes:  uint64(max(memBytes, 0)),
			Env:          env,
		})
	}
	if len(fetch) == 0 {
		return claims, nil
	}
	return s.fetchPayloads(ctx, worker, claims, fetch)
}

// fetchPayloads reads the large payloads of claims[i], i in idx, which the
// claim script left out. The task hashes cannot have gone meanwhile unless
// someone deleted them by hand; such a claim is dropped, and its lease
// expires and is reaped like any other.
func (s *Store) fetchPayloads(ctx context.Context, worker string, claims []Claim, idx []int) ([]Claim, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(idx))
	for j, i := range idx {
		cmds[j] = pipe.HMGet(ctx, s.keys.task(claims[i].TaskID), fieldFnPayload, fieldParamPayload)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		// The claims without payloads cannot run; their leases expire.
		out := claims[:0]
		fetched := make(map[int]bool, len(idx))
		for _, i := range idx {
			fetched[i] = true
		}
		for i, c := range claims {
			if !fetched[i] {
				out = append(out, c)
			}
		}
		return out, fmt.Errorf("store: claim for worker %s: read payloads: %w", worker, err)
	}
	gone := map[int]bool{}
	for j, i := range idx {
		v := cmds[j].Val()
		fn, ok1 := v[0].(string)
		param, ok2 := v[1].(string)
		if !ok1 || !ok2 {
			gone[i] = true
			continue
		}
		claims[i].FnPayload, claims[i].ParamPayload = fn, param
	}
	if len(gone) == 0 {
		return claims, nil
	}
	out := claims[:0]
	for i, c := range claims {
		if !gone[i] {
			out = append(out, c)
		}
	}
	return out, nil
}

// Renew extends to now+lease the leases in held that
// worker still holds, and returns the ids it no longer holds (reaped,
// requeued, completed or gone); the caller should stop working on those. A
// lease that has expired but has not been reaped yet is still held: nobody
// else can have the task until ReapExpired takes it.
func (s *Store) Renew(ctx context.Context, worker string, held []Ref, lease time.Duration) ([]string, error) {
	if len(held) == 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("store: renew: lease must be positive, got %v", lease)
	}
	keys := make([]string, 0, 1+len(held))
	keys = append(keys, s.keys.leases())
	args := make([]any, 0, 2+3*len(held))
	args = append(args, worker, time.Now().Add(lease).UnixMilli())
	for _, r := range held {
		keys = append(keys, s.keys.task(r.TaskID))
		args = append(args, r.TaskID, strconv.FormatInt(r.Fence, 10), r.Owner)
	}
	lost, err := scriptRenew.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("store: renew %d leases for worker %s: %w", len(held), worker, err)
	}
	return lost, nil
}

// Ref names one claim of a task: the task, its owner (the tenant, "" the
// default one) and the claim's fence. Renew, Complete, Release and Requeue
// take it: the owner names the keys of the task's tenant their scripts touch
// (its queue), and a claim of a task whose owner is another is not the
// caller's.
type Ref struct {
	TaskID string
	Owner  string
	Fence  int64
}

// Ref is the claim's reference.
func (c Claim) Ref() Ref { return Ref{TaskID: c.TaskID, Owner: c.Owner, Fence: c.Fence} }

// Outcome is what running a task produced.
type Outcome struct {
	Status  faastype.Status // Completed or Failed
	Result  string          // base64 pickle of the return value or of the exception
	Error   *faastype.TaskError
	Stdout  string
	Stderr  string
	Timings *faastype.Timings
	// ResultJSON is the result as JSON text, for a task that asked for it.
	ResultJSON string
	// Retry, for a FAILED outcome, records it as a failed attempt instead
	// of a final result: the error joins the task's Errors and the task is
	// due again after RetryDelay (0: at once), still RUNNING. The
	// dispatcher sets it from the claim's retry policy (RetryOutcome).
	Retry      bool
	RetryDelay time.Duration
}

// RetryOutcome applies the claim's retry policy to o: a FAILED outcome the
// policy retries, with retries left, gets Retry and the delay (u in [0, 1)
// draws its jitter). It returns o unchanged otherwise.
func RetryOutcome(cl Claim, o Outcome, u float64) Outcome {
	if o.Status != faastype.Failed || cl.Retry == nil || cl.Retried >= cl.Retry.Max || !cl.Retry.Retries(o.Error) {
		return o
	}
	o.Retry = true
	o.RetryDelay = cl.Retry.Delay(cl.Retried+1, u)
	return o
}

// Complete records the outcome if r is the current lease holder's claim:
// the task must be RUNNING, its fence and owner r's and its lease present
// (not reaped).
// It sets the fields and finished_at, drops the lease, counts the task in
// the statistics, sets it to expire after the result TTL and publishes the
// id on the done channel. It returns false, and no error, for a stale, late
// or repeated result (a cancelled task's, for example).
//
// A FAILED outcome needs Error; if its Result is empty, the pickled built-in
// exception it stands for (pickle.FailurePayload: see faastype.Result) is
// stored, so that every FAILED result can be raised by a Python client.
func (s *Store) Complete(ctx context.Context, r Ref, o Outcome) (bool, error) {
	args, done, err := s.completeArgs(r, o)
	if err != nil {
		return false, err
	}
	res, err := scriptComplete.Run(ctx, s.rdb, s.keys.tenancy(s.keys.task(r.TaskID), s.keys.leases(), s.keys.stats(),
		s.keys.scheduled(), s.keys.scheduledCounts(), s.keys.hooks(), s.keys.tenantQueue(r.Owner)), args...).Result()
	if err != nil {
		return false, fmt.Errorf("store: complete task %s: %w", r.TaskID, err)
	}
	return done(res)
}

// CompleteAndClaim is Complete followed by Claim(worker, n, lease), in one
// script and one round trip: how a dispatcher whose sandbox just finished a
// task records it and takes the next. The claims come back whether or not
// the outcome was recorded; on an error nothing was done.
func (s *Store) CompleteAndClaim(ctx context.Context, r Ref, o Outcome, worker string, n int, lease time.Duration) (bool, []Claim, error) {
	cargs, err := s.claimArgs(worker, n, lease)
	if err != nil {
		return false, nil, err
	}
	args, done, err := s.completeArgs(r, o)
	if err != nil {
		return false, nil, err
	}
	res, err := scriptCompleteClaim.Run(ctx, s.rdb, s.keys.tenancy(s.keys.leases(), s.keys.task(r.TaskID), s.keys.stats(),
		s.keys.scheduled(), s.keys.scheduledCounts(), s.keys.hooks(), s.keys.tenantQueue(r.Owner)),
		append(cargs, args...)...).Slice()
	if err != nil {
		return false, nil, fmt.Errorf("store: complete task %s and claim: %w", r.TaskID, err)
	}
	if len(res) != 2 {
		return false, nil, fmt.Errorf("store: complete task %s and claim: unexpected script reply of %d items", r.TaskID, len(res))
	}
	recorded, err := done(res[0])
	rows, _ := res[1].([]any)
	claims, cerr := s.readClaims(ctx, worker, rows)
	return recorded, claims, errors.Join(err, cerr)
}

// completeArgs are the complete script's arguments for recording o, and
// done reads its reply and counts the task.
func (s *Store) completeArgs(r Ref, o Outcome) (args []any, done func(any) (bool, error), err error) {
	id := r.TaskID

	switch o.Status {
	case faastype.Completed:
	case faastype.Failed:
		if o.Error == nil {
			return nil, nil, fmt.Errorf("store: complete task %s: FAILED outcome without Error", id)
		}
		if o.Result == "" {
			o.Result = pickle.EncodeBase64(pickle.FailurePayload(o.Error))
		}
	default:
		return nil, nil, fmt.Errorf("store: complete task %s: status must be %s or %s, got %q", id, faastype.Completed, faastype.Failed, o.Status)
	}
	kind := ""
	if o.Status == faastype.Failed {
		kind = string(o.Error.Kind)
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	args = []any{
		id, strconv.FormatInt(r.Fence, 10), s.keys.doneChannel(), s.ttlMS, s.capped(), 0,
		fieldStatus, string(o.Status),
		fieldResult, o.Result,
		fieldFinishedAt, now,
	}
	if o.Stdout != "" {
		args = append(args, fieldStdout, o.Stdout)
	}
	if o.Stderr != "" {
		args = append(args, fieldStderr, o.Stderr)
	}
	if o.ResultJSON != "" {
		args = append(args, fieldResultJSON, o.ResultJSON)
	}
	if o.Error != nil {
		b, err := json.Marshal(o.Error)
		if err != nil {
			return nil, nil, fmt.Errorf("store: complete task %s: encode error: %w", id, err)
		}
		args = append(args, fieldError, string(b))
	}
	if o.Timings != nil {
		// Timings come from the worker (and ultimately from the guest):
		// NaN, infinities and negative values are recorded as 0.
		t := *o.Timings
		args = append(args, fieldTimings, encodeTimings(t))
	}
	args[5] = len(args) - 6
	delay := int64(-1)
	if o.Retry {
		if o.Status != faastype.Failed {
			return nil, nil, fmt.Errorf("store: complete task %s: only a FAILED outcome is retried", id)
		}
		delay = max(o.RetryDelay.Milliseconds(), 0)
	}
	args = append(args, string(o.Status), kind, now, delay, s.keys.scheduledChannel(), s.keys.newTasksChannel(), r.Owner)
	done = func(res any) (bool, error) {
		n, ok := res.(int64)
		if !ok {
			return false, fmt.Errorf("store: complete task %s: unexpected script reply %T", id, res)
		}
		return n >= 1, nil
	}
	return args, done, nil
}

// Release gives back a task that the caller claimed but did not run (for
// example a dispatcher shutting down): the lease is dropped, the id goes back
// to the consumer end of its tenant's queue so it is the tenant's next, and
// the attempt is not counted. The status stays RUNNING, because statuses never move
// backwards; Claim takes RUNNING tasks from the queue like QUEUED ones. The
// fence is not reused: a later result under the released fence is stale.
// Releasing a task the caller no longer holds does nothing.
func (s *Store) Release(ctx context.Context, r Ref) error {
	_, err := scriptRelease.Run(ctx, s.rdb,
		s.keys.tenancy(s.keys.task(r.TaskID), s.keys.leases(), s.keys.tenantQueue(r.Owner)),
		r.TaskID, strconv.FormatInt(r.Fence, 10), s.capped(), r.Owner).Int()
	if err != nil {
		return fmt.Errorf("store: release task %s: %w", r.TaskID, err)
	}
	return nil
}

// reapBatch bounds the work of one reap script call.
const reapBatch = 500

// ReapExpired handles every lease with expiry <= now: a task with attempts
// left goes back to the consumer end of its tenant's queue (it stays
// RUNNING), one without becomes FAILED with kind WORKER_LOST and a pickled
// RuntimeError as result, and is announced on the done channel. It also
// puts every tenant parked at its running cap back in turn (Claim parks it
// again if it still is at its cap). It returns the ids requeued and failed.
func (s *Store) ReapExpired(ctx context.Context, now time.Time) (requeued, failed []string, err error) {
	result, errJSON, err := s.workerLost()
	if err != nil {
		return nil, nil, fmt.Errorf("store: reap: %w", err)
	}
	for first := true; ; first = false {
		// The expired leases and their tasks' owners (and, the first
		// time, the parked tenants) are read first, to pass the script
		// their keys; it handles the leases still expired.
		pipe := s.rdb.Pipeline()
		due := pipe.ZRangeByScore(ctx, s.keys.leases(), &redis.ZRangeBy{Min: "-inf",
			Max: strconv.FormatInt(now.UnixMilli(), 10), Count: reapBatch})
		var parkedCmd *redis.StringSliceCmd
		if first {
			parkedCmd = pipe.ZRange(ctx, s.keys.parked(), 0, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return requeued, failed, fmt.Errorf("store: reap expired leases: %w", err)
		}
		var parked []string
		if parkedCmd != nil {
			parked = parkedCmd.Val()
		}
		ids := due.Val()
		owners, err := s.TaskOwners(ctx, ids)
		if err != nil {
			return requeued, failed, err
		}
		keys := s.keys.tenancy(s.keys.leases(), s.keys.stats(), s.keys.hooks())
		args := []any{now.UnixMilli(), s.maxAttempts, len(parked), s.keys.doneChannel(), result, errJSON, s.ttlMS, s.capped()}
		for _, t := range parked {
			keys = append(keys, s.keys.tenantQueue(t))
			args = append(args, t)
		}
		for i, id := range ids {
			keys = append(keys, s.keys.task(id), s.keys.tenantQueue(owners[i]))
			args = append(args, id, owners[i])
		}
		res, err := scriptReap.Run(ctx, s.rdb, keys, args...).Slice()
		if err != nil {
			return requeued, failed, fmt.Errorf("store: reap expired leases: %w", err)
		}
		if len(res) != 3 {
			return requeued, failed, fmt.Errorf("store: reap expired leases: unexpected script reply of %d items", len(res))
		}
		requeued = append(requeued, strs(res[0])...)
		failed = append(failed, strs(res[1])...)
		if len(ids) < reapBatch {
			return requeued, failed, nil
		}
	}
}

// dueEntries reads up to n members of the sorted set key scored at or
// before now (unix ms), in one round trip with the earliest member's time,
// which it returns when none is due (zero: the set is empty).
func (s *Store) dueEntries(ctx context.Context, key string, now time.Time, n int64) ([]string, time.Time, error) {
	pipe := s.rdb.Pipeline()
	due := pipe.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: n})
	first := pipe.ZRangeWithScores(ctx, key, 0, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, time.Time{}, err
	}
	var earliest time.Time
	if f := first.Val(); len(due.Val()) == 0 && len(f) > 0 {
		earliest = time.UnixMilli(int64(f[0].Score))
	}
	return due.Val(), earliest, nil
}

// TaskOwners reads the owner of each task ("" for the default tenant, or
// for a task that is gone), in one round trip: what a dispatcher holding
// only a claim's id and fence needs to make its Ref.
func (s *Store) TaskOwners(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, s.keys.task(id), "owner")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: read the owners of %d tasks: %w", len(ids), err)
	}
	out := make([]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// workerLost is the result (a pickled RuntimeError) and the error JSON of a
// task that failed because its worker was lost on its last attempt.
func (s *Store) workerLost() (result, errJSON string, err error) {
	return platformFailure(faastype.KindWorkerLost, fmt.Sprintf("the task was lost %d times: its worker died, hung or was cut off "+
		"(it stopped renewing its lease); giving up", s.maxAttempts))
}

// platformFailure is the result (the pickled built-in exception of kind,
// see faastype.Result) and the error JSON of a task the platform fails.
func platformFailure(kind faastype.ErrorKind, msg string) (result, errJSON string, err error) {
	e := &faastype.TaskError{Kind: kind, Message: msg}
	b, err := json.Marshal(e)
	if err != nil {
		return "", "", fmt.Errorf("encode error: %w", err)
	}
	return pickle.EncodeBase64(pickle.FailurePayload(e)), string(b), nil
}

// Cancellation is what Cancel did.
type Cancellation struct {
	// Cancelled is true if the task was QUEUED or RUNNING and is now FAILED
	// with kind CANCELLED.
	Cancelled bool
	// Was is the status the task had: QUEUED or RUNNING when it was
	// cancelled, COMPLETED or FAILED when it was already final (and left
	// alone).
	Was faastype.Status
}

// Cancel stops a task that is not final yet: it becomes FAILED with kind
// CANCELLED and a pickled RuntimeError as result, leaves the queue, is
// counted, set to expire after the result TTL and announced on the done
// channel, in one script. A RUNNING task loses its lease (its holder's
// result will be rejected) and its id is published on the cancel channel,
// so that the dispatcher holding it stops it at once (SubscribeCancels);
// otherwise the next lease renewal tells it. A final task is left alone.
// It returns ErrNotFound for an unknown id.
func (s *Store) Cancel(ctx context.Context, id string) (Cancellation, error) {
	return s.cancel(ctx, id, false, "")
}

// CancelAs is Cancel for a task of tenant ("" the default one): a task of
// another tenant is left alone and reported as ErrNotFound, exactly as an
// unknown id, in the same script.
func (s *Store) CancelAs(ctx context.Context, tenant, id string) (Cancellation, error) {
	return s.cancel(ctx, id, true, tenant)
}

func (s *Store) cancel(ctx context.Context, id string, checkOwner bool, tenant string) (Cancellation, error) {
	queued, queuedErr, err := platformFailure(faastype.KindCancelled, "the task was cancelled before it started")
	if err != nil {
		return Cancellation{}, fmt.Errorf("store: cancel task %s: %w", id, err)
	}
	running, runningErr, err := platformFailure(faastype.KindCancelled, "the task was cancelled while it was running")
	if err != nil {
		return Cancellation{}, fmt.Errorf("store: cancel task %s: %w", id, err)
	}
	check, owner := "0", tenant
	if checkOwner {
		check = "1"
	}
	var was string
	// The script is given the owner's queue: without a tenant to check,
	// the owner is read first, and again if the script finds another.
	for attempt := 0; ; attempt++ {
		if !checkOwner {
			owner, err = s.rdb.HGet(ctx, s.keys.task(id), "owner").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return Cancellation{}, fmt.Errorf("store: cancel task %s: read its owner: %w", id, err)
			}
		}
		was, err = scriptCancel.Run(ctx, s.rdb, s.keys.tenancy(s.keys.task(id), s.keys.leases(), s.keys.stats(),
			s.keys.scheduled(), s.keys.scheduledCounts(), s.keys.hooks(), s.keys.tenantQueue(owner)),
			id, s.keys.doneChannel(), s.keys.cancelChannel(), time.Now().UnixMilli(), s.ttlMS,
			queued, queuedErr, running, runningErr, check, tenant, owner).Text()
		if err != nil || was != "STALE" {
			break
		}
		if attempt == 2 {
			return Cancellation{}, fmt.Errorf("store: cancel task %s: its owner kept changing", id)
		}
	}
	if errors.Is(err, redis.Nil) {
		return Cancellation{}, fmt.Errorf("store: cancel task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Cancellation{}, fmt.Errorf("store: cancel task %s: %w", id, err)
	}
	return Cancellation{Cancelled: !faastype.Status(was).Final(), Was: faastype.Status(was)}, nil
}

// capped tells the scripts whether this store's claims can park tenants
// (a cap of running tasks is set), so that dropping a lease must look for
// a parked tenant to wake.
func (s *Store) capped() string {
	if s.maxRunning > 0 {
		return "1"
	}
	return "0"
}

func strs(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, str(it))
	}
	return out
}

// promoteBatch bounds the work of one promote script call.
const promoteBatch = 500

// PromoteDue makes the scheduled tasks due at now runnable (delayed tasks
// join their tenant's queue, tasks waiting for a retry go to its front)
// and publishes their ids on "Tasks". It returns how many it promoted and
// when the next scheduled task is due (zero if none). Any number of
// dispatchers may call it at once: each task is promoted once.
func (s *Store) PromoteDue(ctx context.Context, now time.Time) (promoted int, next time.Time, err error) {
	for {
		// The due entries and their owners are read first, to pass the
		// script their task and queue keys; it promotes those still due.
		ids, earliest, err := s.dueEntries(ctx, s.keys.scheduled(), now, promoteBatch)
		if err != nil {
			return promoted, time.Time{}, fmt.Errorf("store: promote due tasks: %w", err)
		}
		if len(ids) == 0 {
			return promoted, earliest, nil
		}
		owners, err := s.TaskOwners(ctx, ids)
		if err != nil {
			return promoted, time.Time{}, fmt.Errorf("store: promote due tasks: %w", err)
		}
		keys := s.keys.tenancy(s.keys.scheduled(), s.keys.scheduledCounts())
		args := make([]any, 0, 2+2*len(ids))
		args = append(args, now.UnixMilli(), s.keys.newTasksChannel())
		for i, id := range ids {
			keys = append(keys, s.keys.task(id), s.keys.tenantQueue(owners[i]))
			args = append(args, id, owners[i])
		}
		res, err := scriptPromote.Run(ctx, s.rdb, keys, args...).Int64Slice()
		if err != nil {
			return promoted, time.Time{}, fmt.Errorf("store: promote due tasks: %w", err)
		}
		if len(res) != 2 {
			return promoted, time.Time{}, fmt.Errorf("store: promote due tasks: unexpected script reply of %d items", len(res))
		}
		promoted += int(res[0])
		if len(ids) < promoteBatch {
			if res[1] >= 0 {
				next = time.UnixMilli(res[1])
			}
			return promoted, next, nil
		}
	}
}

// ScheduledCount is the number of tasks in the scheduled set: delayed ones
// not due yet and ones waiting for a retry.
func (s *Store) ScheduledCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.scheduled()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: scheduled count: %w", err)
	}
	return n, nil
}

// RetryState reads a task's retry policy (nil: none) and the retries it
// made: what a dispatcher holding only a claim's id and fence needs to
// apply the policy to a failure.
func (s *Store) RetryState(ctx context.Context, id string) (*faastype.RetryPolicy, int, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.task(id), fieldRetry, fieldRetried).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("store: retry state of task %s: %w", id, err)
	}
	p, err := decodeRetry(str(vals[0]))
	if err != nil {
		return nil, 0, fmt.Errorf("store: retry state of task %s: %w", id, err)
	}
	n, _ := strconv.Atoi(str(vals[1]))
	return p, n, nil
}
