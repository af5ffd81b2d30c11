package faastype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says how a task that failed in the user's code is run again:
// up to Max more times, the n-th retry Backoff-delayed (Delay), when its
// error matches On. Platform failures are not its business: a lost worker
// is requeued by the store on its own (WORKER_LOST after the store's
// maximum attempts), and a cancelled task is never retried.
type RetryPolicy struct {
	// Max is the most retries after the first attempt (0: none).
	Max int `json:"max"`
	// Backoff is "exponential" (Base, 2 Base, 4 Base, ...), "linear"
	// (Base, 2 Base, 3 Base, ...) or "fixed" (Base each time).
	Backoff string `json:"backoff"`
	// Base is the first delay; MaxDelay caps every delay.
	Base     time.Duration `json:"-"`
	MaxDelay time.Duration `json:"-"`
	// Jitter draws each delay uniformly from [d/2, d] instead of d, so that
	// tasks that failed together do not all come back at once.
	Jitter bool `json:"jitter"`
	// On lists what is retried: Python exception class names (the raised
	// exception's own class, compared by the name after the last dot:
	// "ValueError", "mypkg.Busy"; base classes do not match) and error kinds ("TIMEOUT",
	// "MEMORY_LIMIT", "USER_EXIT", "USER_EXCEPTION" for any exception).
	// Empty: every USER_EXCEPTION.
	On []string `json:"on,omitempty"`
}

// Bounds of a RetryPolicy (Check).
const (
	MaxRetries     = 100
	MaxRetryDelay  = 24 * time.Hour
	DefaultBackoff = "exponential"
)

// DefaultRetryBase and DefaultRetryMaxDelay are a policy's Base and
// MaxDelay when not given.
const (
	DefaultRetryBase     = time.Second
	DefaultRetryMaxDelay = time.Minute
)

// retryableKinds are the error kinds On may name, and that a policy can
// retry at all; the others are the platform's (WORKER_LOST, CANCELLED) or
// cannot get better by running again (BAD_PAYLOAD, PAYLOAD_TOO_LARGE,
// RESULT_TOO_LARGE, RESULT_UNPICKLABLE and SANDBOX_CRASH are).
var retryableKinds = map[ErrorKind]bool{
	KindUserException: true,
	KindUserExit:      true,
	KindTimeout:       true,
	KindMemoryLimit:   true,
}

// Check reports the first thing wrong with p, in words for the user.
func (p RetryPolicy) Check() error {
	if p.Max < 0 || p.Max > MaxRetries {
		return fmt.Errorf("max must be a whole number from 0 to %d, not %d", MaxRetries, p.Max)
	}
	switch p.Backoff {
	case "exponential", "linear", "fixed":
	default:
		return fmt.Errorf("backoff must be \"exponential\", \"linear\" or \"fixed\", not %q", p.Backoff)
	}
	if p.Base < 0 || p.Base > MaxRetryDelay {
		return fmt.Errorf("base must be from 0 to %s, not %s", MaxRetryDelay, p.Base)
	}
	if p.MaxDelay < p.Base || p.MaxDelay > MaxRetryDelay {
		return fmt.Errorf("max_delay must be from base (%s) to %s, not %s", p.Base, MaxRetryDelay, p.MaxDelay)
	}
	if len(p.On) > 32 {
		return fmt.Errorf("on lists %d names; at most 32", len(p.On))
	}
	for _, name := range p.On {
		if !retryName(name) {
			return fmt.Errorf("on: %q is neither a Python exception class name nor one of the error kinds %s",
				truncateName(name), retryKindNames())
		}
	}
	return nil
}

// retryName accepts an error kind that can be retried, or a dotted Python
// identifier (an exception class name) that is not an upper-case name.
func retryName(name string) bool {
	if retryableKinds[ErrorKind(name)] {
		return true
	}
	if name == "" || len(name) > 200 || strings.ToUpper(name) == name && strings.ToLower(name) != name {
		// An all-capitals name is a kind (exception classes are CamelCase):
		// one that cannot be retried, or a typo of one.
		return false
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !letter && (i == 0 || r < '0' || r > '9') {
				return false
			}
		}
	}
	return true
}

func retryKindNames() string {
	return "USER_EXCEPTION, USER_EXIT, TIMEOUT, MEMORY_LIMIT"
}

func truncateName(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Retries reports whether a failure with err is one p retries (attempts
// left aside).
func (p RetryPolicy) Retries(err *TaskError) bool {
	if p.Max <= 0 || err == nil || !retryableKinds[err.Kind] {
		return false
	}
	if len(p.On) == 0 {
		return err.Kind == KindUserException
	}
	class := lastName(err.ExceptionClass())
	for _, name := range p.On {
		switch {
		case name == string(err.Kind):
			return true
		case class != "" && lastName(name) == class:
			return true
		}
	}
	return false
}

// lastName is the part of a dotted name after its last dot: the sandbox
// reports an exception's class by its qualified name within its module,
// not by its module, so "pkg.errors.Busy" in On matches a raised Busy.
func lastName(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// Delay is the delay before retry n (1 for the first), before jitter; u in
// [0, 1) draws the jitter when p.Jitter is set.
func (p RetryPolicy) Delay(n int, u float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.Base)
	switch p.Backoff {
	case "exponential":
		d *= math.Pow(2, float64(n-1))
	case "linear":
		d *= float64(n)
	}
	d = math.Min(d, float64(p.MaxDelay))
	if p.Jitter {
		d = d/2 + d/2*u
	}
	return time.Duration(d)
}

// ExceptionClass is the class name of a USER_EXCEPTION's exception, as the
// sandbox reports it at the start of Message ("ValueError: bad input"), or
// "" for other kinds.
func (e *TaskError) ExceptionClass() string {
	if e == nil || e.Kind != KindUserException {
		return ""
	}
	name, _, _ := strings.Cut(e.Message, ":")
	if !retryName(name) || retryableKinds[ErrorKind(name)] {
		return ""
	}
	return name
}

// AttemptError is the error of one attempt of a task that was run again.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   TaskError `json:"error"`
}

// retryJSON is RetryPolicy's JSON form: durations as Go duration text
// ("1s", "1m30s"); UnmarshalJSON also takes a number of seconds.
type retryJSON struct {
	Max      *int            `json:"max"`
	Backoff  string          `json:"backoff,omitempty"`
	Base     json.RawMessage `json:"base,omitempty"`
	MaxDelay json.RawMessage `json:"max_delay,omitempty"`
	Jitter   *bool           `json:"jitter,omitempty"`
	On       []string        `json:"on,omitempty"`
}

// MarshalJSON writes {"max", "backoff", "base", "max_delay", "jitter", "on"}.
func (p RetryPolicy) MarshalJSON() ([]byte, error) {
	base, _ := json.Marshal(p.Base.String())
	maxDelay, _ := json.Marshal(p.MaxDelay.String())
	return json.Marshal(retryJSON{Max: &p.Max, Backoff: p.Backoff, Base: base, MaxDelay: maxDelay, Jitter: &p.Jitter, On: p.On})
}

// UnmarshalJSON reads a policy as a user gives it: an object whose missing
// fields take the defaults (backoff exponential, base 1s, max_delay 1m, or
// base if larger, jitter on, on empty), or a bare number, the retries with
// every default. Unknown fields are refused. It does not Check the result.
func (p *RetryPolicy) UnmarshalJSON(b []byte) error {
	*p = RetryPolicy{Backoff: DefaultBackoff, Base: DefaultRetryBase, MaxDelay: DefaultRetryMaxDelay, Jitter: true}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '{' {
		if err := json.Unmarshal(b, &p.Max); err != nil {
			return fmt.Errorf("retries must be an object or a whole number of retries")
		}
		return nil
	}
	var j retryJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("retries: %v", err)
	}
	if j.Max == nil {
		return fmt.Errorf("retries: max is missing (the most retries after the first attempt)")
	}
	p.Max = *j.Max
	if j.Backoff != "" {
		p.Backoff = j.Backoff
	}
	maxGiven := len(j.MaxDelay) > 0
	var err error
	if len(j.Base) > 0 {
		if p.Base, err = parseRetryDuration("base", j.Base); err != nil {
			return err
		}
	}
	if maxGiven {
		if p.MaxDelay, err = parseRetryDuration("max_delay", j.MaxDelay); err != nil {
			return err
		}
	} else if p.MaxDelay < p.Base {
		p.MaxDelay = p.Base
	}
	if j.Jitter != nil {
		p.Jitter = *j.Jitter
	}
	p.On = j.On
	return nil
}

// parseRetryDuration reads "1s"-style text or a number of seconds.
func parseRetryDuration(field string, raw json.RawMessage) (time.Duration, error) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		d, err := time.ParseDuration(text)
		if err != nil {
			if secs, err2 := strconv.ParseFloat(text, 64); err2 == nil {
				return secondsDuration(field, secs)
			}
			return 0, fmt.Errorf("retries: %s must be a duration such as \"1s\" or a number of seconds, not %q", field, truncateName(text))
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf("retries: %s must be a duration such as \"1s\" or a number of seconds", field)
	}
	return secondsDuration(field, secs)
}

func secondsDuration(field string, secs float64) (time.Duration, error) {
	if math.IsNaN(secs) || secs < 0 || secs > MaxRetryDelay.Seconds() {
		return 0, fmt.Errorf("retries: %s must be from 0 to %s", field, MaxRetryDelay)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
