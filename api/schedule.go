package api

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// MaxTaskDelay is the furthest in the future a task may be delayed.
const MaxTaskDelay = 366 * 24 * time.Hour

// callOptions are the fields of an execute request (POST /execute_function,
// POST /execute_batch) that say when and how often a call runs:
// "delay" or "run_at", and "retries".
type callOptions struct {
	runAt    time.Time // zero: at once
	retry    *faastype.RetryPolicy
	settings store.Settings // the function's
	callback string         // completion webhook URL, "" none
}

// readCallOptions reads them; a function's retry policy and callback URL
// are the defaults of its calls ("retries": 0 or null, "callback_url": null
// or "" turn them off for one call).
func (h *Handler) readCallOptions(m map[string]json.RawMessage, f store.Function, now time.Time) (callOptions, error) {
	o := callOptions{retry: f.Retry, settings: f.Settings, callback: f.CallbackURL}
	var err error
	if o.runAt, err = readRunAt(m, now); err != nil {
		return o, err
	}
	if p, given, err := readRetry(m, "retries"); err != nil {
		return o, err
	} else if given {
		o.retry = p
	}
	if u, given, err := h.readCallbackURL(m); err != nil {
		return o, err
	} else if given {
		o.callback = u
	}
	return o, nil
}

// apply puts the options, and the function's settings, on a task (or a
// batch's template).
func (o callOptions) apply(t *store.Task) {
	t.RunAt, t.Retry = o.runAt, o.retry
	t.Timeout, t.MemoryBytes = o.settings.Timeout, o.settings.MemoryBytes
	if env := o.settings.TaskEnv(); len(env) > 0 {
		t.Env = env
	}
	t.CallbackURL = o.callback
}

// readCallbackURL reads "callback_url": where the completion webhook of a
// task goes (see package hooks). given is false when the field is absent;
// null or "" is given and means none. A URL that is not http(s), is
// malformed or names a denied address (a literal IP, or localhost) is a
// 400; so is any URL when webhooks are off (no secret to sign them with).
func (h *Handler) readCallbackURL(m map[string]json.RawMessage) (string, bool, error) {
	raw, ok := m["callback_url"]
	if !ok {
		return "", false, nil
	}
	if raw = bytes.TrimSpace(raw); string(raw) == "null" {
		return "", true, nil
	}
	var u string
	if err := json.Unmarshal(raw, &u); err != nil {
		return "", true, errorf(http.StatusUnprocessableEntity, "field %q must be a string (an http or https URL) or null", "callback_url")
	}
	if u == "" {
		return "", true, nil
	}
	if h.opts.Webhooks.Signer == nil {
		return "", true, errorf(http.StatusBadRequest, "field %q: completion webhooks are off on this server "+
			"(it was started without --webhook-secret)", "callback_url")
	}
	if _, err := h.opts.Webhooks.Guard.CheckURL(u); err != nil {
		return "", true, errorf(http.StatusBadRequest, "field %q: %v", "callback_url", err)
	}
	return u, true, nil
}

// readRunAt reads "delay" (a duration such as "30s" or a number of
// seconds) or "run_at" (an RFC 3339 time or unix seconds): when the task is
// due. A time already past means at once.
func readRunAt(m map[string]json.RawMessage, now time.Time) (time.Time, error) {
	rawDelay, hasDelay := m["delay"]
	rawAt, hasAt := m["run_at"]
	hasDelay = hasDelay && string(rawDelay) != "null"
	hasAt = hasAt && string(rawAt) != "null"
	switch {
	case hasDelay && hasAt:
		return time.Time{}, errorf(http.StatusUnprocessableEntity, `give either "delay" or "run_at", not both`)
	case hasDelay:
		d, err := durationValue(rawDelay)
		if err != nil || d < 0 || d > MaxTaskDelay {
			return time.Time{}, errorf(http.StatusUnprocessableEntity,
				`field "delay" must be a duration such as "30s" or "2h" or a number of seconds, from 0 to %s`, MaxTaskDelay)
		}
		if d == 0 {
			return time.Time{}, nil
		}
		return now.Add(d), nil
	case hasAt:
		at, err := timeValue(rawAt)
		if err != nil {
			return time.Time{}, errorf(http.StatusUnprocessableEntity,
				`field "run_at" must be an RFC 3339 time such as "2026-12-07T18:30:00Z" or a number of unix seconds`)
		}
		if at.Sub(now) > MaxTaskDelay {
			return time.Time{}, errorf(http.StatusUnprocessableEntity, `field "run_at" is more than %s away`, MaxTaskDelay)
		}
		if !at.After(now) {
			return time.Time{}, nil
		}
		return at, nil
	}
	return time.Time{}, nil
}

// durationValue reads a JSON string with a Go duration ("1m30s") or a
// number of seconds, as a string or a number.
func durationValue(raw json.RawMessage) (time.Duration, error) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		if d, err := time.ParseDuration(text); err == nil {
			return d, nil
		}
		secs, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return 0, err
		}
		return secondsValue(secs)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, err
	}
	return secondsValue(secs)
}

func secondsValue(secs float64) (time.Duration, error) {
	if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > MaxTaskDelay.Seconds()*2 {
		return 0, strconv.ErrRange
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// timeValue reads an RFC 3339 string or a number of unix seconds.
func timeValue(raw json.RawMessage) (time.Time, error) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return time.Parse(time.RFC3339Nano, text)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return time.Time{}, err
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > 1e11 {
		return time.Time{}, strconv.ErrRange
	}
	return time.UnixMilli(int64(secs * 1000)), nil
}

// readRetry reads a retry policy field: an object (see
// faastype.RetryPolicy.UnmarshalJSON) or a number of retries. given is
// false when the field is absent; null or 0 is given and means none.
func readRetry(m map[string]json.RawMessage, field string) (p *faastype.RetryPolicy, given bool, err error) {
	raw, ok := m[field]
	if !ok {
		return nil, false, nil
	}
	if raw = bytes.TrimSpace(raw); string(raw) == "null" {
		return nil, true, nil
	}
	var policy faastype.RetryPolicy
	if err := json.Unmarshal(raw, &policy); err != nil {
		return nil, true, errorf(http.StatusUnprocessableEntity, "field %q: %v", field, err)
	}
	if err := policy.Check(); err != nil {
		return nil, true, errorf(http.StatusUnprocessableEntity, "field %q: %v", field, err)
	}
	if policy.Max == 0 {
		return nil, true, nil
	}
	return &policy, true, nil
}
