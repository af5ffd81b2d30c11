package faastype

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRetryPolicyJSON(t *testing.T) {
	cases := []struct {
		in      string
		want    RetryPolicy
		wantErr string // in the decode or Check error
	}{
		{`3`, RetryPolicy{Max: 3, Backoff: "exponential", Base: time.Second, MaxDelay: time.Minute, Jitter: true}, ""},
		{`{"max": 2, "backoff": "fixed", "base": "250ms", "jitter": false}`,
			RetryPolicy{Max: 2, Backoff: "fixed", Base: 250 * time.Millisecond, MaxDelay: time.Minute}, ""},
		{`{"max": 1, "base": 120}`, RetryPolicy{Max: 1, Backoff: "exponential", Base: 2 * time.Minute, MaxDelay: 2 * time.Minute, Jitter: true}, ""},
		{`{"max": 5, "base": "1s", "max_delay": "10s", "on": ["ValueError", "TIMEOUT", "mod.MyError"]}`,
			RetryPolicy{Max: 5, Backoff: "exponential", Base: time.Second, MaxDelay: 10 * time.Second, Jitter: true,
				On: []string{"ValueError", "TIMEOUT", "mod.MyError"}}, ""},
		{`{"backoff": "fixed"}`, RetryPolicy{}, "max is missing"},
		{`{"max": 1, "tries": 3}`, RetryPolicy{}, "unknown field"},
		{`{"max": 1, "base": "soon"}`, RetryPolicy{}, "base must be a duration"},
		{`{"max": 1, "base": -1}`, RetryPolicy{}, "base must be from 0"},
		{`{"max": 101}`, RetryPolicy{}, "max must be a whole number from 0 to 100"},
		{`{"max": 1, "backoff": "random"}`, RetryPolicy{}, "backoff must be"},
		{`{"max": 1, "base": "10s", "max_delay": "1s"}`, RetryPolicy{}, "max_delay must be from base"},
		{`{"max": 1, "on": ["WORKER_LOST"]}`, RetryPolicy{}, "neither a Python exception class name"},
		{`{"max": 1, "on": ["not a name"]}`, RetryPolicy{}, "neither a Python exception class name"},
		{`"3"`, RetryPolicy{}, "retries must be an object"},
	}
	for _, c := range cases {
		var p RetryPolicy
		err := json.Unmarshal([]byte(c.in), &p)
		if err == nil {
			err = p.Check()
		}
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want one with %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if b, _ := json.Marshal(p); string(b) != mustJSON(t, c.want) {
			t.Errorf("%s: got %s, want %s", c.in, b, mustJSON(t, c.want))
		}
		// What MarshalJSON writes reads back the same.
		var back RetryPolicy
		if b, _ := json.Marshal(p); json.Unmarshal(b, &back) != nil || mustJSON(t, back) != mustJSON(t, p) {
			t.Errorf("%s: round trip %s", c.in, mustJSON(t, back))
		}
	}
}

func mustJSON(t *testing.T, p RetryPolicy) string {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRetryPolicyRetriesAndDelays(t *testing.T) {
	userErr := func(msg string) *TaskError { return &TaskError{Kind: KindUserException, Message: msg} }
	any3 := RetryPolicy{Max: 3, Backoff: "exponential", Base: time.Second, MaxDelay: 5 * time.Second}
	named := any3
	named.On = []string{"ValueError", "TIMEOUT", "pkg.Custom"}
	cases := []struct {
		p    RetryPolicy
		err  *TaskError
		want bool
	}{
		{any3, userErr("KeyError: 'a'"), true},
		{any3, &TaskError{Kind: KindTimeout, Message: "task exceeded 1s"}, false},
		{any3, &TaskError{Kind: KindCancelled}, false},
		{named, userErr("ValueError: bad"), true},
		{named, userErr("KeyError: 'a'"), false},
		{named, &TaskError{Kind: KindTimeout}, true},
		{named, userErr("Custom: x"), true},
		{named, userErr("other.Custom: x"), true}, // by its own class name
		{named, &TaskError{Kind: KindWorkerLost}, false},
		{RetryPolicy{Max: 0, Backoff: "fixed"}, userErr("ValueError: x"), false},
	}
	for i, c := range cases {
		if got := c.p.Retries(c.err); got != c.want {
			t.Errorf("case %d: Retries(%+v) = %v, want %v", i, c.err, got, c.want)
		}
	}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second} {
		if got := any3.Delay(n, 0.9); got != want {
			t.Errorf("exponential Delay(%d) = %v, want %v", n, got, want)
		}
	}
	lin := RetryPolicy{Backoff: "linear", Base: time.Second, MaxDelay: time.Hour}
	if got := lin.Delay(3, 0); got != 3*time.Second {
		t.Errorf("linear Delay(3) = %v", got)
	}
	jit := any3
	jit.Jitter = true
	if lo, hi := jit.Delay(2, 0), jit.Delay(2, 0.999999); lo != time.Second || hi <= 1900*time.Millisecond || hi > 2*time.Second {
		t.Errorf("jittered Delay(2) in [%v, %v], want [1s, 2s]", lo, hi)
	}
}
