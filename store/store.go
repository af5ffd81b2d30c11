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
// task's fence (a number no two claims share) and leases it until an expiry.
// Only the holder of the current lease (same fence) may Complete it; a late
// or repeated result is rejected. A lease that expires is handled by
// ReapExpired (Requeue does the same at once for the claims of a worker
// known to be gone): the id goes back to the front of the queue (the task
// stays RUNNING, statuses never move backwards) or, after MaxAttempts
// attempts, the task FAILS with error kind WORKER_LOST. Release gives a
// claim back without counting the attempt. Cancel fails a task that is
// still QUEUED. Every FAILED task has a result that unpickles to an
// exception instance.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/runtime"
)

// Task statuses (course protocol). They only move forward:
// QUEUED -> RUNNING -> COMPLETED|FAILED, and QUEUED -> FAILED on cancel.
const (
	StatusQueued    = "QUEUED"
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// IsFinal reports whether status is COMPLETED or FAILED.
func IsFinal(status string) bool { return status == StatusCompleted || status == StatusFailed }

var (
	// ErrNotFound is returned for an unknown function or task id.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when a new function or task id is already taken.
	ErrExists = errors.New("already exists")
)

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
}

// Store is the Redis-backed state. It is safe for concurrent use.
type Store struct {
	rdb         redis.UniversalClient
	keys        keys
	maxAttempts int
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
	return &Store{rdb: rdb, keys: keys{prefix: opts.Prefix}, maxAttempts: opts.MaxAttempts, log: opts.Logger}
}

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
	Isolation runtime.Isolation
	CreatedAt time.Time
	// Source and Entrypoint are set for a function registered as source
	// text; its Payload is then the pickle that loads it in the sandbox
	// (runtime.SourcePayload).
	Source     string
	Entrypoint string
}

// PutFunction stores a new function. Isolation "" is stored as warm, a zero
// CreatedAt as now, and an empty Hash is computed from Payload. It returns
// ErrExists if the id is taken.
func (s *Store) PutFunction(ctx context.Context, f Function) error {
	if f.ID == "" {
		return fmt.Errorf("store: put function: empty id")
	}
	if f.Isolation == "" {
		f.Isolation = runtime.Warm
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	if f.Hash == "" {
		h, err := PayloadHash(f.Payload)
		if err != nil {
			return fmt.Errorf("store: put function %s: %w", f.ID, err)
		}
		f.Hash = h
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
		fieldFnName, fieldFnPayload, fieldFnHash, fieldIsolation, fieldCreatedAt, fieldSource, fieldEntrypoint).Result()
	if err != nil {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, err)
	}
	name, ok := vals[0].(string)
	if !ok {
		return Function{}, fmt.Errorf("store: get function %s: %w", id, ErrNotFound)
	}
	f := Function{
		ID:         id,
		Name:       name,
		Payload:    str(vals[1]),
		Hash:       str(vals[2]),
		Isolation:  runtime.Isolation(str(vals[3])),
		CreatedAt:  parseMS(str(vals[4])),
		Source:     str(vals[5]),
		Entrypoint: str(vals[6]),
	}
	if f.Isolation == "" {
		f.Isolation = runtime.Warm
	}
	if f.Hash == "" {
		// Written by another tool. A payload that does not decode keeps an
		// empty hash; the sandbox reports it as a bad payload.
		f.Hash, _ = PayloadHash(f.Payload)
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
	Isolation    runtime.Isolation
	Status       string
	Result       string // base64 pickle; "" until the task is final
	Error        *runtime.TaskError
	Stdout       string
	Stderr       string
	Attempts     int    // claims that counted (a Release does not count)
	Fence        int64  // number of the latest claim; the lease holder's token
	Worker       string // the worker of the latest claim
	CreatedAt    time.Time
	StartedAt    time.Time // first claim
	FinishedAt   time.Time
	Timings      *runtime.Timings
	WantJSON     bool   // the caller asked for the result as JSON too
	ResultJSON   string // that JSON, when the value has one ("" otherwise)
}

// Enqueue creates the task QUEUED (whatever t.Status says), makes it
// runnable and publishes its id on "Tasks", in one script. t.ID is
// required; a zero CreatedAt means now; isolation "" means warm. It returns
// ErrExists if the id is taken.
func (s *Store) Enqueue(ctx context.Context, t Task) error {
	if t.ID == "" {
		return fmt.Errorf("store: enqueue: empty task id")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	if t.Isolation == "" {
		t.Isolation = runtime.Warm
	}
	args := []any{
		t.ID, s.keys.newTasksChannel(),
		fieldFnPayload, t.FnPayload,
		fieldParamPayload, t.ParamPayload,
		fieldStatus, StatusQueued,
		fieldResult, "",
		fieldFunctionID, t.FunctionID,
		fieldFnHash, t.FnHash,
		fieldIsolation, string(t.Isolation),
		fieldCreatedAt, unixMS(t.CreatedAt),
		fieldAttempts, 0,
		fieldFence, 0,
	}
	if t.WantJSON {
		args = append(args, fieldWantJSON, "1")
	}
	n, err := scriptEnqueue.Run(ctx, s.rdb, []string{s.keys.task(t.ID), s.keys.queue()}, args...).Int()
	if err != nil {
		return fmt.Errorf("store: enqueue task %s: %w", t.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: enqueue task %s: %w", t.ID, ErrExists)
	}
	return nil
}

var taskFields = []string{
	fieldStatus, fieldResult, fieldFunctionID, fieldFnHash, fieldIsolation,
	fieldError, fieldStdout, fieldStderr, fieldAttempts, fieldFence, fieldWorker,
	fieldCreatedAt, fieldStartedAt, fieldFinishedAt, fieldTimings, fieldWantJSON, fieldResultJSON,
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
	status, ok := m[fieldStatus]
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
		Isolation:    runtime.Isolation(m[fieldIsolation]),
		Status:       status,
		Stdout:       m[fieldStdout],
		Stderr:       m[fieldStderr],
		Worker:       m[fieldWorker],
		CreatedAt:    parseMS(m[fieldCreatedAt]),
		StartedAt:    parseMS(m[fieldStartedAt]),
		FinishedAt:   parseMS(m[fieldFinishedAt]),
	}
	t.WantJSON = m[fieldWantJSON] == "1"
	if IsFinal(status) {
		t.Result = m[fieldResult]
		t.ResultJSON = m[fieldResultJSON]
	}
	t.Attempts, _ = strconv.Atoi(m[fieldAttempts])
	t.Fence, _ = strconv.ParseInt(m[fieldFence], 10, 64)
	if e := m[fieldError]; e != "" {
		var te runtime.TaskError
		if err := json.Unmarshal([]byte(e), &te); err != nil {
			return Task{}, fmt.Errorf("store: get task %s: decode error field: %w", id, err)
		}
		t.Error = &te
	}
	if tm := m[fieldTimings]; tm != "" {
		var ti runtime.Timings
		if err := json.Unmarshal([]byte(tm), &ti); err != nil {
			return Task{}, fmt.Errorf("store: get task %s: decode timings field: %w", id, err)
		}
		t.Timings = &ti
	}
	return t, nil
}

// Status returns a task's status with one HGET.
func (s *Store) Status(ctx context.Context, id string) (string, error) {
	st, err := s.rdb.HGet(ctx, s.keys.task(id), fieldStatus).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store: status of task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: status of task %s: %w", id, err)
	}
	return st, nil
}

// QueueDepth is the length of the queue. Cancelled tasks stay in it until a
// Claim drops them, so it can overcount.
func (s *Store) QueueDepth(ctx context.Context) (int64, error) {
	n, err := s.rdb.LLen(ctx, s.keys.queue()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: queue depth: %w", err)
	}
	return n, nil
}

// LeaseCount is the number of tasks currently leased.
func (s *Store) LeaseCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.leases()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: lease count: %w", err)
	}
	return n, nil
}

// PayloadHash is the hex SHA-256 of the bytes a base64 payload encodes.
// Whitespace (codecs inserts a newline every 76 characters) is ignored.
func PayloadHash(payload string) (string, error) {
	b, err := DecodeBase64(payload)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// DecodeBase64 decodes standard base64 the way Python's codecs and base64
// modules write it: whitespace anywhere is ignored and the padding may be
// left out.
func DecodeBase64(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return -1
		}
		return r
	}, s)
	if len(clean)%4 != 0 {
		return base64.RawStdEncoding.DecodeString(strings.TrimRight(clean, "="))
	}
	return base64.StdEncoding.DecodeString(clean)
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
