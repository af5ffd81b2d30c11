// Package taskview builds what the API says of a task: the body of
// GET /result/{task_id}, which is also the body of the task's completion
// webhook (package hooks). It is shared by the api and the dispatchers'
// deliverers, so that the two cannot drift apart; the api's OpenAPI
// document is made from these types (their doc and enum tags).
package taskview

import (
	"encoding/json"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// Error is faastype.TaskError with every field always present.
type Error struct {
	Kind      faastype.ErrorKind `json:"kind" enum:"USER_EXCEPTION,USER_EXIT,TIMEOUT,MEMORY_LIMIT,SANDBOX_CRASH,BAD_PAYLOAD,RESULT_TOO_LARGE,RESULT_UNPICKLABLE,PAYLOAD_TOO_LARGE,WORKER_LOST,CANCELLED"`
	Message   string             `json:"message" doc:"what happened, in plain text"`
	Traceback string             `json:"traceback" doc:"the sandbox's Python traceback, for USER_EXCEPTION; empty otherwise"`
}

// AttemptError is one failed attempt's error.
type AttemptError struct {
	Attempt int       `json:"attempt" doc:"the attempt's number, from 1"`
	At      time.Time `json:"at" doc:"when it failed"`
	Error   Error     `json:"error"`
}

// Callback is the state of a task's completion webhook.
type Callback struct {
	URL       string     `json:"url" doc:"where the webhook is posted"`
	State     string     `json:"state" enum:"waiting,pending,delivered,undeliverable" doc:"waiting: the task is not final yet; pending: being delivered (or waiting for a retry); delivered: the receiver answered 2xx; undeliverable: given up after the retries"`
	Attempts  int        `json:"attempts" doc:"delivery attempts made so far"`
	LastError string     `json:"last_error,omitempty" doc:"why the last failed attempt failed (an HTTP status, a refused address, a timeout)"`
	LastAt    *time.Time `json:"last_attempt_at,omitempty" doc:"when the last attempt ended"`
	NextAt    *time.Time `json:"next_attempt_at,omitempty" doc:"when the next attempt is due, while pending after a failure"`
}

// Result is the body of GET /result/{task_id}.
type Result struct {
	TaskID   string            `json:"task_id"`
	Status   faastype.Status   `json:"status" enum:"QUEUED,RUNNING,COMPLETED,FAILED"`
	Result   *string           `json:"result" doc:"null until final; then serialize(return value) for COMPLETED, serialize(exception) for FAILED"` // null until final
	Error    *Error            `json:"error,omitempty" doc:"present for a FAILED task: why it failed"`
	Stdout   string            `json:"stdout" doc:"what the function printed (capped)"`
	Stderr   string            `json:"stderr" doc:"what the function wrote to stderr (capped)"`
	Timings  *faastype.Timings `json:"timings" doc:"where the time went, in seconds; null until the task ran"`
	Attempts int               `json:"attempts" doc:"runs of the task so far (more than 1 after its worker was lost, or when its retry policy ran it again)"`
	// Errors lists the errors of the failed attempts, oldest first: those
	// its retry policy ran again and, for a FAILED task, the last.
	Errors        []AttemptError `json:"errors" doc:"the error of every failed attempt, oldest first: those the retry policy ran again and, once FAILED, the last; empty if none failed"`
	CreatedAt     *time.Time     `json:"created_at,omitempty" doc:"when the task was submitted"`
	StartedAt     *time.Time     `json:"started_at,omitempty" doc:"when its first attempt started; absent until then"`
	FinishedAt    *time.Time     `json:"finished_at,omitempty" doc:"when it became final; absent until then"`
	RunAt         *time.Time     `json:"run_at,omitempty" doc:"when a delayed task is (or was) due to start"`
	NextAttemptAt *time.Time     `json:"next_attempt_at,omitempty" doc:"for a task waiting for its retry: when the next attempt is due"`
	// ResultJSON is the result as JSON, for a call made with JSON
	// arguments: present (null until final, or when the value has no JSON
	// form) only for such calls.
	ResultJSON *json.RawMessage `json:"result_json,omitempty" doc:"only for calls made with JSON arguments: the return value as JSON; null until final or when the value has no JSON form"`
	// Callback is left out of the webhook's own body (WebhookBody).
	Callback *Callback `json:"callback,omitempty" doc:"only for a task with a callback_url: its completion webhook's delivery (not in the webhook's own body)"`
}

// OptTime is t in UTC, or nil for the zero time.
func OptTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// ResultOf is what GET /result answers for t.
func ResultOf(t store.Task) Result {
	resp := Result{
		TaskID:        t.ID,
		Status:        t.Status,
		Stdout:        t.Stdout,
		Stderr:        t.Stderr,
		Timings:       t.Timings,
		Attempts:      t.Attempts,
		Errors:        AttemptErrors(t),
		CreatedAt:     OptTime(t.CreatedAt),
		StartedAt:     OptTime(t.StartedAt),
		FinishedAt:    OptTime(t.FinishedAt),
		RunAt:         OptTime(t.RunAt),
		NextAttemptAt: OptTime(t.NextAttemptAt),
	}
	if t.Status.Final() {
		resp.Result = &t.Result
	}
	if t.Status == faastype.Failed && t.Error != nil {
		resp.Error = &Error{Kind: t.Error.Kind, Message: t.Error.Message, Traceback: t.Error.Traceback}
	}
	if t.WantJSON {
		raw := json.RawMessage("null")
		// The guest wrote it, so only trust it if it parses.
		if t.ResultJSON != "" && json.Valid([]byte(t.ResultJSON)) {
			raw = json.RawMessage(t.ResultJSON)
		}
		resp.ResultJSON = &raw
	}
	if t.CallbackURL != "" {
		cb := &Callback{URL: t.CallbackURL, State: "waiting"}
		if c := t.Callback; c != nil {
			cb.State, cb.Attempts, cb.LastError = string(c.State), c.Attempts, c.Error
			cb.LastAt, cb.NextAt = OptTime(c.At), OptTime(c.NextAt)
		}
		resp.Callback = cb
	}
	return resp
}

// WebhookBody is the body of t's completion webhook: GET /result's answer
// for the final task, as the API encodes it, without the callback object
// (which describes the delivery itself, and changes between attempts).
func WebhookBody(t store.Task) ([]byte, error) {
	r := ResultOf(t)
	r.Callback = nil
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// AttemptErrors are the errors of t's failed attempts: the retried ones
// the store kept and, for a FAILED task, its final error.
func AttemptErrors(t store.Task) []AttemptError {
	out := make([]AttemptError, 0, len(t.Errors)+1)
	for _, e := range t.Errors {
		out = append(out, AttemptError{Attempt: e.Attempt, At: e.At.UTC(),
			Error: Error{Kind: e.Error.Kind, Message: e.Error.Message, Traceback: e.Error.Traceback}})
	}
	// A cancellation ends an attempt only if one was running: not for a
	// task that never ran, nor for one waiting for its next attempt (its
	// last attempt's error is already the last entry).
	cancelledBetween := t.Error != nil && t.Error.Kind == faastype.KindCancelled &&
		(t.Attempts == 0 || (len(t.Errors) > 0 && t.Errors[len(t.Errors)-1].Attempt == t.Attempts))
	if t.Status == faastype.Failed && t.Error != nil && !cancelledBetween {
		at := t.FinishedAt
		if at.IsZero() {
			at = time.Now()
		}
		out = append(out, AttemptError{Attempt: t.Attempts, At: at.UTC(),
			Error: Error{Kind: t.Error.Kind, Message: t.Error.Message, Traceback: t.Error.Traceback}})
	}
	return out
}
