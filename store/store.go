// Package store owns the platform's state in Redis: registered functions,
// tasks and their lifecycle (queue, leases with fencing tokens, completion,
// requeue of lost work, cancellation), and the notifications that go with
// it (new tasks on "Tasks", final tasks on "<prefix>done").
//
// The layout stays compatible with the course project (see keys.go); every
// transition that touches more than one key is one Lua script (see lua/),
// and every script works on real Redis and on miniredis alike.
//
// Task lifecycle. Enqueue creates a task QUEUED and pushes its id on the
// queue. Claim pops ids, marks the task RUNNING, counts an attempt, bumps the
// task's fence (a number no two claims share, growing also across a
// failover) and leases it until an expiry.
// Only the holder of the current lease (same fence) may Complete it; a late
// or repeated result is rejected. A lease that expires is handled by
// ReapExpired (Requeue does the same at once for the claims of a worker
// known to be gone): the id goes back to the front of the queue (the task
// stays RUNNING, statuses never move backwards) or, after MaxAttempts
// attempts, the task FAILS with error kind WORKER_LOST. Release gives a
// claim back without counting the attempt. Cancel fails a task that is
// QUEUED or RUNNING (the dispatcher running it hears of it and kills its
// sandbox). Every FAILED task has a result that unpickles to an exception
// instance.
//
// Tenants. Functions and tasks belong to a tenant (their owner field; none
// for the default tenant "", which open mode uses). Each tenant has its own
// queue; Claim serves the tenants with queued work in turn (round robin),
// so that one tenant's thousands of queued tasks do not delay another's
// first. Options.MaxQueued caps the ids a tenant's queue may hold (Enqueue
// refuses more, atomically, with ErrQueueFull); Options.MaxRunning caps the
// tasks of one tenant leased at once (Claim passes over a tenant at its
// cap). See lua/lib.lua for the keys.
//
// The scripts also keep cluster-wide statistics (Stats: counters and
// histograms in one hash, gauges from the queues and leases), a bounded
// index of the newest tasks (RecentTasks), rewrite every final task with
// only what it keeps (see lua/lib.lua) and set it to expire after the
// result TTL (Options.ResultTTL); functions never expire. The client may be
// one Redis or a Sentinel failover client; Redis Cluster is not supported
// (see keys.go).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
)

var (
	// ErrNotFound is returned for an unknown function or task id.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when a new function or task id is already taken.
	ErrExists = errors.New("already exists")
	// ErrQueueFull is returned (as a *QueueFullError) when new tasks would
	// put more than Options.MaxQueued ids in their tenant's queue.
	ErrQueueFull = errors.New("queue full")
)

// QueueFullError says by how much Enqueue missed its tenant's queue cap.
type QueueFullError struct {
	Tenant string
	Queued int64 // ids in the tenant's queue now
	Adding int   // tasks the refused call would have added
	Limit  int   // Options.MaxQueued
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("queue full: %d tasks queued, %d more would pass the limit of %d per tenant", e.Queued, e.Adding, e.Limit)
}

// Is makes errors.Is(err, ErrQueueFull) true.
func (e *QueueFullError) Is(target error) bool { return target == ErrQueueFull }

// validTenant is what a tenant name may be: it becomes part of key names.
var validTenant = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidTenant checks a tenant name: 1 to 64 letters, digits, '.', '_' or
// '-', starting with a letter or digit. The default tenant "" is not a
// name one can give.
func ValidTenant(name string) error {
	if !validTenant.MatchString(name) {
		return fmt.Errorf("tenant name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func checkOwner(owner string) error {
	if owner == "" {
		return nil
	}
	return ValidTenant(owner)
}

// Options configure a Store. Zero fields take defaults.
type Options struct {
	// Prefix of the keys and channels the course protocol does not fix.
	// Default "faas:".
	Prefix string
	// MaxAttempts is how many times a task may be claimed and lost (lease
	// expired) before it fails with WORKER_LOST. Default 3.
	MaxAttempts int
	// Logger for background work (subscriptions). Default slog.Default().
	Logger *slog.Logger
	// ResultTTL is how long a task is kept after it became final; then
	// Redis removes it. Zero keeps tasks forever. Functions never expire.
	ResultTTL time.Duration
	// MaxQueued caps the ids one tenant's queue may hold: Enqueue and
	// EnqueueBatch refuse tasks beyond it with ErrQueueFull. Zero: no cap.
	// It matters where tasks are enqueued (the API).
	MaxQueued int
	// MaxRunning caps the tasks of one tenant leased at once: Claim passes
	// over a tenant at its cap. Zero: no cap. It matters where tasks are
	// claimed (the dispatchers); give every dispatcher the same value (with
	// different ones, a tenant may reach the largest).
	MaxRunning int
}

// DefaultResultTTL is the result TTL the commands use unless told otherwise.
const DefaultResultTTL = 24 * time.Hour

// RecentTasks is how many of the newest task ids the store keeps in its
// recent-tasks index (RecentTasks).
const RecentTasks = 200

// MaxBatch is the most tasks one EnqueueBatch creates (the script passes
// them to Redis commands as arguments, and Lua bounds how many).
const MaxBatch = 4000

// Store is the Redis-backed state. It is safe for concurrent use.
type Store struct {
	rdb         redis.UniversalClient
	keys        keys
	maxAttempts int
	ttlMS       int64 // result TTL in milliseconds, 0: keep
	maxQueued   int
	maxRunning  int
	log         *slog.Logger
}

// New returns a Store on rdb. It needs a single Redis node (or miniredis):
// the scripts address task hashes they find in the queue, which Redis
// Cluster does not allow.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ttl := max(opts.ResultTTL, 0)
	if ttl > 0 && ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	return &Store{rdb: rdb, keys: keys{prefix: opts.Prefix}, maxAttempts: opts.MaxAttempts,
		ttlMS: ttl.Milliseconds(), maxQueued: max(opts.MaxQueued, 0), maxRunning: max(opts.MaxRunning, 0), log: opts.Logger}
}

// MaxQueued is the configured cap of ids per tenant queue (0: none).
func (s *Store) MaxQueued() int { return s.maxQueued }

// MaxRunning is the configured cap of leased tasks per tenant (0: none).
func (s *Store) MaxRunning() int { return s.maxRunning }

// ResultTTL is the configured result TTL (0: tasks are kept forever).
func (s *Store) ResultTTL() time.Duration { return time.Duration(s.ttlMS) * time.Millisecond }

// MaxAttempts is the configured attempt limit.
func (s *Store) MaxAttempts() int { return s.maxAttempts }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Function is a registered function.
type Function struct {
	ID        string
	Name      string
	Payload   string // base64 text of the dill pickle, as received
	Hash      string // hex SHA-256 of the decoded pickle bytes
	Isolation faastype.Isolation
	CreatedAt time.Time
	// Source and Entrypoint are set for a function registered as source
	// text; its Payload is then the pickle that loads it in the sandbox
	// (runtime.SourcePayload).
	Source     string
	Entrypoint string
	// Owner is the tenant the function belongs to ("" the default one).
	Owner string
	// Bundle is the content hash of the modules and packages registered
	// with the function (PutBundle), "" for none; BundleModules are its
	// top-level module names, which pickles may refer to.
	Bundle        string
	BundleModules []string
	// Retry is the retry policy of the function's tasks (a call may give
	// its own); nil: none.
	Retry *faastype.RetryPolicy
	// Settings are the function's own limits and environment, which its
	// tasks carry.
	Settings Settings
	// CallbackURL is the default completion webhook of the function's
	// tasks (a call may give its own, or none); "": none.
	CallbackURL string
}

// Settings are what a function asks of the sandbox for its tasks: a
// timeout and a memory cap below the nodes' (zero: the node's), and its
// environment: Env is shown back (GET /function), Secrets only by name;
// both end up in os.environ.
type Settings struct {
	Timeout     time.Duration
	MemoryBytes uint64
	Env         map[string]string
	Secrets     map[string]string
}

// TaskEnv is the environment the function's tasks run with: its variables
// and secrets, "NAME=value", sorted.
func (s Settings) TaskEnv() []string {
	out := make([]string, 0, len(s.Env)+len(s.Secrets))
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	for k, v := range s.Secrets {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// settingsFields are a function's settings as hash fields.
func (s Settings) fields() ([]any, error) {
	var out []any
	if s.Timeout > 0 {
		out = append(out, fieldTimeoutMS, s.Timeout.Milliseconds())
	}
	if s.MemoryBytes > 0 {
		out = append(out, fieldMemoryBytes, s.MemoryBytes)
	}
	for _, e := range []struct {
		field string
		m     map[string]string
	}{{fieldEnv, s.Env}, {fieldSecretEnv, s.Secrets}} {
		if len(e.m) == 0 {
			continue
		}
		b, err := json.Marshal(e.m)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.field, err)
		}
		out = append(out, e.field, string(b))
	}
	return out, nil
}

// decodeEnv reads an env field ("" none).
func decodeEnv(text string) (map[string]string, error) {
	if text == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return nil, fmt.Errorf("decode environment: %w", err)
	}
	return m, nil
}

// PutFunction stores a new function. Isolation "" is stored as warm, a zero
// CreatedAt as now, and an empty Hash is computed from Payload. It returns
// ErrExists if the id is taken.
func (s *Store) PutFunction(ctx context.Context, f Function) error {
	if f.ID == "" {
		return fmt.Errorf("store: put function: empty id")
	}
	if err := checkOwner(f.Owner); err != nil {
		return fmt.Errorf("store: put function %s: %w", f.ID, err)
	}
	if f.Isolation == "" {
		f.Isolation = faastype.Warm
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	if f.Hash == "" {
		b, err := pickle.DecodeBase64(f.Payload)
		if err != nil {
			return fmt.Errorf("store: put function %s: %w", f.ID, err)
		}
		f.Hash = pickle.Hash(b)
	}
	args := []any{
		fieldFnName, f.Name,
		fieldFnPayload, f.Payload,
		fieldFnHash, f.Hash,
		fieldIsolation, string(f.Isolation),
		fieldCreatedAt, unixMS(f.CreatedAt),
	}
	if f.Source != "" {
		args = append(args, fieldSource, f.Source, fieldEntrypoint, f.Entrypoint)
	}
	if f.Owner != "" {
		args = append(args, fieldOwner, f.Owner)
	}
	if f.Bundle != "" {
		args = append(args, fieldBundle, f.Bundle, fieldBundleMods, strings.Join(f.BundleModules, " "))
	}
	if f.Retry != nil {
		b, err := json.Marshal(f.Retry)
		if err != nil {
			return fmt.Errorf("store: put function %s: encode retry policy: %w", f.ID, err)
		}
		args = append(args, fieldRetry, string(b))
	}
	settings, err := f.Settings.fields()
	if err != nil {
		return fmt.Errorf("store: put function %s: %w", f.ID, err)
	}
	args = append(args, settings...)
	if f.CallbackURL != "" {
		args = append(args, fieldCallbackURL, f.CallbackURL)
	}
	n, err := scriptPutFunction.Run(ctx, s.rdb, []string{s.keys.function(f.ID)}, args...).Int()
	if err != nil {
		return fmt.Errorf("store: put function %s: %w", f.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: put function %s: %w", f.ID, ErrExists)
	}
	return nil
}

// GetFunction loads a function. A hash written by the course tools (only
// fn_name and fn_payload) is accepted: its Hash is computed (empty if the
// payload is not base64) and its isolation is warm.
func (s *Store) GetFunction(ctx context.Context, id string) (Function, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.function(id),
		fieldFnName, fieldFnPayload, fieldFnHash, fieldIsolation, fieldCreatedAt, fieldSource, fieldEntrypoint, fieldOwner,
		fieldBundle, fieldBundleMods, fieldRetry, fieldTimeoutMS, fieldMemoryBytes, fieldEnv, fieldSecretEnv, fieldCallbackURL).Result()
	if err != nil {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, err)
	}
	name, ok := vals[0].(string)
	if !ok {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, ErrNotFound)
	}
	f := Function{
		ID:          id,
		Name:        name,
		Payload:     str(vals[1]),
		Hash:        str(vals[2]),
		Isolation:   faastype.Isolation(str(vals[3])),
		CreatedAt:   parseMS(str(vals[4])),
		Source:      str(vals[5]),
		Entrypoint:  str(vals[6]),
		Owner:       str(vals[7]),
		Bundle:      str(vals[8]),
		CallbackURL: str(vals[15]),
	}
	if mods := str(vals[9]); mods != "" {
		f.BundleModules = strings.Fields(mods)
	}
	if f.Retry, err = decodeRetry(str(vals[10])); err != nil {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, err)
	}
	ms, _ := strconv.ParseInt(str(vals[11]), 10, 64)
	f.Settings.Timeout = time.Duration(ms) * time.Millisecond
	f.Settings.MemoryBytes, _ = strconv.ParseUint(str(vals[12]), 10, 64)
	if f.Settings.Env, err = decodeEnv(str(vals[13])); err != nil {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, err)
	}
	if f.Settings.Secrets, err = decodeEnv(str(vals[14])); err != nil {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, err)
	}
	if f.Isolation == "" {
		f.Isolation = faastype.Warm
	}
	if f.Hash == "" {
		// Written by another tool. A payload that does not decode keeps an
		// empty hash; the sandbox reports it as a bad payload.
		if b, err := pickle.DecodeBase64(f.Payload); err == nil {
			f.Hash = pickle.Hash(b)
		}
	}
	return f, nil
}

// Task is a task as stored.
type Task struct {
	ID           string
	FunctionID   string
	FnPayload    string // base64 text
	ParamPayload string // base64 text
	FnHash       string
	Isolation    faastype.Isolation
	Status       faastype.Status
	Result       string // base64 pickle; "" until the task is final
	Error        *faastype.TaskError
	Stdout       string
	Stderr       string
	Attempts     int    // claims that counted (a Release does not count)
	Fence        int64  // number of the latest claim; the lease holder's token
	Worker       string // the worker of the latest claim
	CreatedAt    time.Time
	StartedAt    time.Time // first claim
	FinishedAt   time.Time
	Timings      *faastype.Timings
	WantJSON     bool   // the caller asked for the result as JSON too
	ResultJSON   string // that JSON, when the value has one ("" otherwise)
	Owner        string // the tenant the task belongs to ("" the default one)
	Bundle       string // the function's bundle hash ("" none)
	// RunAt is when a delayed task is due (zero: at once). Enqueue puts a
	// task due later in the scheduled set instead of the queue.
	RunAt time.Time
	// Retry is the task's retry policy (nil: none), applied by the
	// dispatcher that runs it (Outcome.Retry); Errors are the errors of the
	// attempts it retried, oldest first, and NextAttemptAt when a task
	// waiting for its retry is due (zero otherwise).
	Retry         *faastype.RetryPolicy
	Errors        []faastype.AttemptError
	NextAttemptAt time.Time
	// Timeout, MemoryBytes and Env are the function's settings, copied to
	// the task at Enqueue (Env: variables and secrets, "NAME=value"); a
	// final task keeps none of them. GetTask does not read Env.
	Timeout     time.Duration
	MemoryBytes uint64
	Env         []string
	// CallbackURL is where the task's completion webhook goes ("" none);
	// Callback its delivery, once the task is final (nil before, or
	// without a callback).
	CallbackURL string
	Callback    *Callback
}

// Callback is the state of a final task's completion webhook.
type Callback struct {
	State    CallbackState
	Attempts int       // delivery attempts made (claimed) so far
	Error    string    // why the last failed attempt failed ("" none)
	At       time.Time // when the last attempt was recorded (zero: none yet)
	NextAt   time.Time // when the next attempt is due (zero: none)
}

// CallbackState is where a completion webhook is.
type CallbackState string

// The states of a completion webhook.
const (
	CallbackPending       CallbackState = "pending"
	CallbackDelivered     CallbackState = "delivered"
	CallbackUndeliverable CallbackState = "undeliverable"
)

// decodeRetry reads a stored retry policy ("" none).
func decodeRetry(text string) (*faastype.RetryPolicy, error) {
	if text == "" {
		return nil, nil
	}
	var p faastype.RetryPolicy
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		return nil, fmt.Errorf("decode retry policy: %w", err)
	}
	return &p, nil
}

// decodeErrors reads a task's errors field, as the scripts write it.
func decodeErrors(text string) ([]faastype.AttemptError, error) {
	if text == "" {
		return nil, nil
	}
	var raw []struct {
		Attempt int                `json:"attempt"`
		AtMS    int64              `json:"at_ms"`
		Error   faastype.TaskError `json:"error"`
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("decode errors: %w", err)
	}
	out := make([]faastype.AttemptError, len(raw))
	for i, e := range raw {
		out[i] = faastype.AttemptError{Attempt: e.Attempt, At: time.UnixMilli(e.AtMS), Error: e.Error}
	}
	return out, nil
}

// Enqueue creates the task QUEUED (whatever t.Status says), makes it
// runnable in its owner's queue and publishes its id on "Tasks", in one
// script. t.ID is required; a zero CreatedAt means now; isolation "" means
// warm. It returns ErrExists if the id is taken, and a *QueueFullError
// (ErrQueueFull) if the owner's queue holds Options.MaxQueued ids already.
func (s *Store) Enqueue(ctx context.Context, t Task) error {
	if err := s.enqueue(ctx, t, []string{t.ID}, []string{t.ParamPayload}); err != nil {
		return fmt.Errorf("store: enqueue task %s: %w", t.ID, err)
	}
	return nil
}

// EnqueueBatch creates one QUEUED task per ids[i], with argument payload
// params[i] and everything else (function, payload, hash, isolation,
// want_json, created_at, owner) from tmpl, makes them runnable in that
// order and publishes their ids on "Tasks", in one script: all of them or
// none. It returns ErrExists (and creates nothing) if an id is taken, a
// *QueueFullError (ErrQueueFull) if they would put more than
// Options.MaxQueued ids in the owner's queue, and an error for an empty or
// repeated id.
func (s *Store) EnqueueBatch(ctx context.Context, tmpl Task, ids, params []string) error {
	if err := s.enqueue(ctx, tmpl, ids, params); err != nil {
		return fmt.Errorf("store: enqueue %d tasks: %w", len(ids), err)
	}
	return nil
}

func (s *Store) enqueue(ctx context.Context, tmpl Task, ids, params []string) error {
	if len(ids) == 0 || len(ids) != len(params) {
		return fmt.Errorf("%d task ids for %d argument payloads", len(ids), len(params))
	}
	if len(ids) > MaxBatch {
		return fmt.Errorf("%d tasks in one call; at most %d", len(ids), MaxBatch)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			return errors.New("empty task id")
		}
		if seen[id] {
			return fmt.Errorf("task id %s given twice", id)
		}
		seen[id] = true
	}
	if err := checkOwner(tmpl.Owner); err != nil {
		return err
	}
	if tmpl.CreatedAt.IsZero() {
		tmpl.CreatedAt = time.Now()
	}
	if tmpl.Isolation == "" {
		tmpl.Isolation = faastype.Warm
	}
	// Large payloads are staged with plain commands, so that the script
	// does not copy them (see keys.staged); small ones ride in the script's
	// arguments, which saves a round trip.
	total := len(tmpl.FnPayload) * len(ids)
	for _, p := range params {
		total += len(p)
	}
	staged := total >= stageBytes && total/len(ids) >= stageBytesPerTask
	shared := []any{
		fieldStatus, string(faastype.Queued),
		fieldResult, "",
		fieldFunctionID, tmpl.FunctionID,
		fieldFnHash, tmpl.FnHash,
		fieldIsolation, string(tmpl.Isolation),
		fieldCreatedAt, unixMS(tmpl.CreatedAt),
		fieldAttempts, 0,
		fieldFence, 0,
	}
	if tmpl.WantJSON {
		shared = append(shared, fieldWantJSON, "1")
	}
	if tmpl.Owner != "" {
		shared = append(shared, fieldOwner, tmpl.Owner)
	}
	if tmpl.Bundle != "" {
		shared = append(shared, fieldBundle, tmpl.Bundle)
	}
	if tmpl.RunAt.After(time.Now()) {
		shared = append(shared, fieldRunAt, unixMS(tmpl.RunAt))
	}
	if tmpl.Timeout > 0 {
		shared = append(shared, fieldTimeoutMS, tmpl.Timeout.Milliseconds())
	}
	if tmpl.MemoryBytes > 0 {
		shared = append(shared, fieldMemoryBytes, tmpl.MemoryBytes)
	}
	if len(tmpl.Env) > 0 {
		b, err := json.Marshal(tmpl.Env)
		if err != nil {
			return fmt.Errorf("encode environment: %w", err)
		}
		shared = append(shared, fieldEnv, string(b))
	}
	if tmpl.Retry != nil && tmpl.Retry.Max > 0 {
		b, err := json.Marshal(tmpl.Retry)
		if err != nil {
			return fmt.Errorf("encode retry policy: %w", err)
		}
		shared = append(shared, fieldRetry, string(b))
	}
	if tmpl.CallbackURL != "" {
		shared = append(shared, fieldCallbackURL, tmpl.CallbackURL)
	}
	if !staged {
		shared = append(shared, fieldFnPayload, tmpl.FnPayload)
	}
	keys := s.keys.tenancy(s.keys.stats(), s.keys.recentOf(tmpl.Owner), s.keys.scheduled(), s.keys.scheduledCounts(),
		s.keys.tenantQueue(tmpl.Owner))
	for _, id := range ids {
		keys = append(keys, s.keys.task(id))
	}
	args := make([]any, 0, 7+len(shared)+len(params))
	args = append(args, s.keys.newTasksChannel(), RecentTasks, tmpl.Owner, s.maxQueued, stageBytes, len(shared)/2)
	args = append(args, shared...)
	if staged {
		pipe := s.rdb.TxPipeline()
		for i, id := range ids {
			k := s.keys.staged(id)
			keys = append(keys, k)
			pipe.HSet(ctx, k, fieldFnPayload, tmpl.FnPayload, fieldParamPayload, params[i])
			pipe.PExpire(ctx, k, stagedTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("stage payloads: %w", err)
		}
		args = append(args, 1)
	} else {
		args = append(args, 0)
		for _, p := range params {
			args = append(args, p)
		}
	}
	args = append(args, s.keys.scheduledChannel())
	res, err := scriptEnqueue.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		if staged {
			s.unstage(ids)
		}
		return err
	}
	if len(res) != 2 {
		return fmt.Errorf("unexpected script reply of %d items", len(res))
	}
	switch res[0] {
	case 0:
		return ErrExists
	case -1:
		return &QueueFullError{Tenant: tmpl.Owner, Queued: res[1], Adding: len(ids), Limit: s.maxQueued}
	case -2:
		return fmt.Errorf("staged payloads expired before the tasks were created (over %s)", stagedTTL)
	}
	return nil
}

// Payloads of at least stageBytes in all, and stageBytesPerTask per task,
// are staged rather than passed to the enqueue script: past that, Lua's
// copying costs Redis more than the extra round trip does.
const (
	stageBytes        = 32 << 10
	stageBytesPerTask = 4 << 10
	stagedTTL         = 10 * time.Minute
)

// unstage deletes staged payloads after a failed enqueue script (they would
// expire anyway); with a fresh context, as the caller's may be what ended.
func (s *Store) unstage(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.keys.staged(id)
	}
	s.rdb.Del(ctx, keys...)
}

var taskFields = []string{
	fieldStatus, fieldResult, fieldFunctionID, fieldFnHash, fieldIsolation,
	fieldError, fieldStdout, fieldStderr, fieldAttempts, fieldFence, fieldWorker,
	fieldCreatedAt, fieldStartedAt, fieldFinishedAt, fieldTimings, fieldWantJSON, fieldResultJSON, fieldOwner, fieldBundle,
	fieldRunAt, fieldRetry, fieldErrors, fieldNextAttempt,
	fieldCallbackURL, fieldCallbackState, fieldCallbackAttempts, fieldCallbackError, fieldCallbackAt, fieldCallbackNext,
	// payloads last so that GetTaskSummary can leave them out
	fieldFnPayload, fieldParamPayload,
}

// GetTask loads a task with everything, payloads included.
func (s *Store) GetTask(ctx context.Context, id string) (Task, error) {
	return s.getTask(ctx, id, taskFields)
}

// GetTaskSummary loads a task without its function and argument payloads
// (which can be large); what the result route needs.
func (s *Store) GetTaskSummary(ctx context.Context, id string) (Task, error) {
	return s.getTask(ctx, id, taskFields[:len(taskFields)-2])
}

func (s *Store) getTask(ctx context.Context, id string, fields []string) (Task, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.task(id), fields...).Result()
	if err != nil {
		return Task{}, fmt.Errorf("store: get task %s: %w", id, err)
	}
	m := make(map[string]string, len(fields))
	for i, f := range fields {
		if v, ok := vals[i].(string); ok {
			m[f] = v
		}
	}
	return taskFromFields(id, m)
}

// taskFromFields reads a task from its hash's fields.
func taskFromFields(id string, m map[string]string) (Task, error) {
	st, ok := m[fieldStatus]
	status := faastype.Status(st)
	if !ok {
		// Missing, or a hash that is not a task (a function).
		return Task{}, fmt.Errorf("store: get task %s: %w", id, ErrNotFound)
	}
	t := Task{
		ID:           id,
		FunctionID:   m[fieldFunctionID],
		FnPayload:    m[fieldFnPayload],
		ParamPayload: m[fieldParamPayload],
		FnHash:       m[fieldFnHash],
		Isolation:    faastype.Isolation(m[fieldIsolation]),
		Status:       status,
		Stdout:       m[fieldStdout],
		Stderr:       m[fieldStderr],
		Worker:       m[fieldWorker],
		CreatedAt:    parseMS(m[fieldCreatedAt]),
		StartedAt:    parseMS(m[fieldStartedAt]),
		FinishedAt:   parseMS(m[fieldFinishedAt]),
		Owner:        m[fieldOwner],
		Bundle:       m[fieldBundle],
		RunAt:        parseMS(m[fieldRunAt]),
		CallbackURL:  m[fieldCallbackURL],
	}
	if cs := m[fieldCallbackState]; cs != "" {
		cb := &Callback{State: CallbackState(cs), Error: m[fieldCallbackError], At: parseMS(m[fieldCallbackAt]),
			NextAt: parseMS(m[fieldCallbackNext])}
		cb.Attempts, _ = strconv.Atoi(m[fieldCallbackAttempts])
		t.Callback = cb
	}
	if !status.Final() {
		t.NextAttemptAt = parseMS(m[fieldNextAttempt])
	}
	var err error
	if t.Retry, err = decodeRetry(m[fieldRetry]); err != nil {
		return Task{}, fmt.Errorf("store: get task %s: %w", id, err)
	}
	if t.Errors, err = decodeErrors(m[fieldErrors]); err != nil {
		return Task{}, fmt.Errorf("store: get task %s: %w", id, err)
	}
	t.WantJSON = m[fieldWantJSON] == "1"
	if status.Final() {
		t.Result = m[fieldResult]
		t.ResultJSON = m[fieldResultJSON]
	}
	t.Attempts, _ = strconv.Atoi(m[fieldAttempts])
	t.Fence, _ = strconv.ParseInt(m[fieldFence], 10, 64)
	if e := m[fieldError]; e != "" {
		var te faastype.TaskError
		if err := json.Unmarshal([]byte(e), &te); err != nil {
			return Task{}, fmt.Errorf("store: get task %s: decode error field: %w", id, err)
		}
		t.Error = &te
	}
	if tm := m[fieldTimings]; tm != "" {
		ti, err := decodeTimings(tm)
		if err != nil {
			return Task{}, fmt.Errorf("store: get task %s: decode timings field: %w", id, err)
		}
		t.Timings = &ti
	}
	return t, nil
}

// Status returns a task's status with one HGET.
func (s *Store) Status(ctx context.Context, id string) (faastype.Status, error) {
	st, err := s.rdb.HGet(ctx, s.keys.task(id), fieldStatus).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store: status of task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: status of task %s: %w", id, err)
	}
	return faastype.Status(st), nil
}

// TaskState is what GET /status tells of a task.
type TaskState struct {
	Status faastype.Status
	Owner  string
	// RunAt is when a delayed task was due (zero: it was not delayed);
	// NextAttemptAt when a task waiting for its retry is due.
	RunAt, NextAttemptAt time.Time
}

// TaskStatus returns a task's status, owner and due times with one HMGET.
func (s *Store) TaskStatus(ctx context.Context, id string) (TaskState, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.task(id), fieldStatus, fieldOwner, fieldRunAt, fieldNextAttempt).Result()
	if err != nil {
		return TaskState{}, fmt.Errorf("store: status of task %s: %w", id, err)
	}
	st, ok := vals[0].(string)
	if !ok {
		return TaskState{}, fmt.Errorf("store: status of task %s: %w", id, ErrNotFound)
	}
	ts := TaskState{Status: faastype.Status(st), Owner: str(vals[1]), RunAt: parseMS(str(vals[2]))}
	if !ts.Status.Final() {
		ts.NextAttemptAt = parseMS(str(vals[3]))
	}
	return ts, nil
}

// QueueDepth is the number of ids in all the tenants' queues: QUEUED tasks
// and requeued ones (a task whose hash vanished stays until a Claim drops
// it). It costs O(tenants with queued work).
func (s *Store) QueueDepth(ctx context.Context) (int64, error) {
	lengths, err := s.queueLengths(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: queue depth: %w", err)
	}
	var n int64
	for _, l := range lengths {
		n += l
	}
	return n, nil
}

// queueLengths is the length of every non-empty queue, by tenant: the
// default tenant's and those of the tenants in the ring or parked (a
// tenant with queued work is in one of them). Two round trips: the ring
// and the parked set read together, then their queues' lengths.
func (s *Store) queueLengths(ctx context.Context) (map[string]int64, error) {
	pipe := s.rdb.TxPipeline()
	ring := pipe.ZRange(ctx, s.keys.ring(), 0, -1)
	parked := pipe.ZRange(ctx, s.keys.parked(), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	tenants := append([]string{""}, ring.Val()...)
	tenants = append(tenants, parked.Val()...)
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
	pipe = s.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(tenants))
	for i, t := range tenants {
		lens[i] = pipe.LLen(ctx, s.keys.tenantQueue(t))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(tenants))
	for i, t := range tenants {
		if n := lens[i].Val(); n > 0 {
			out[t] = n
		}
	}
	return out, nil
}

// TenantUsage is what one tenant has in the system now: the ids in its
// queue and its tasks leased to a dispatcher or worker.
func (s *Store) TenantUsage(ctx context.Context, tenant string) (queued, running int64, err error) {
	pipe := s.rdb.Pipeline()
	q := pipe.LLen(ctx, s.keys.tenantQueue(tenant))
	r := pipe.HGet(ctx, s.keys.running(), tenant)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("store: usage of tenant %q: %w", tenant, err)
	}
	running, _ = strconv.ParseInt(r.Val(), 10, 64)
	return q.Val(), max(running, 0), nil
}

// LeaseCount is the number of tasks currently leased.
func (s *Store) LeaseCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.leases()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: lease count: %w", err)
	}
	return n, nil
}

func unixMS(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func parseMS(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
