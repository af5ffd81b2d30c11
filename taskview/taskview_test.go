package taskview_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/taskview"
)

// The webhook's body is GET /result's answer, as the API encodes it (one
// JSON object and a newline), without the callback object.
func TestWebhookBodyIsTheResultWithoutCallback(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123)
	for _, c := range []struct {
		name  string
		task  store.Task
		state string // callback state in /result, "" none
	}{
		{"no callback", store.Task{ID: "a", Status: faastype.Completed, Result: "eA==", FinishedAt: at}, ""},
		{"waiting", store.Task{ID: "b", Status: faastype.Running, CallbackURL: "https://x/y"}, "waiting"},
		{"delivered", store.Task{ID: "c", Status: faastype.Failed, FinishedAt: at, Attempts: 2, CallbackURL: "https://x/y",
			Error:    &faastype.TaskError{Kind: faastype.KindCancelled, Message: "cancelled"},
			Callback: &store.Callback{State: store.CallbackDelivered, Attempts: 3, Error: "HTTP 500", At: at}}, "delivered"},
	} {
		r := taskview.ResultOf(c.task)
		if (r.Callback == nil) != (c.state == "") || (r.Callback != nil && r.Callback.State != c.state) {
			t.Errorf("%s: callback %+v, want state %q", c.name, r.Callback, c.state)
		}
		body, err := taskview.WebhookBody(c.task)
		if err != nil {
			t.Fatal(err)
		}
		r.Callback = nil
		want, _ := json.Marshal(r)
		if string(body) != string(want)+"\n" {
			t.Errorf("%s: body %s, want %s", c.name, body, want)
		}
	}
}

// A cancellation is an attempt's error only when an attempt was running.
func TestAttemptErrorsOfCancelledTasks(t *testing.T) {
	failed := faastype.AttemptError{Attempt: 1, At: time.UnixMilli(1000), Error: faastype.TaskError{Kind: faastype.KindUserException, Message: "ValueError: x"}}
	cancel := &faastype.TaskError{Kind: faastype.KindCancelled, Message: "cancelled"}
	for _, c := range []struct {
		name string
		t    store.Task
		want []int // the attempts listed
	}{
		{"never ran", store.Task{Status: faastype.Failed, Error: cancel}, []int{}},
		{"waiting for its retry", store.Task{Status: faastype.Failed, Error: cancel, Attempts: 1, Errors: []faastype.AttemptError{failed}}, []int{1}},
		{"during its second attempt", store.Task{Status: faastype.Failed, Error: cancel, Attempts: 2, Errors: []faastype.AttemptError{failed}}, []int{1, 2}},
		{"during its first attempt", store.Task{Status: faastype.Failed, Error: cancel, Attempts: 1}, []int{1}},
		{"failed for good", store.Task{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException}, Attempts: 2,
			Errors: []faastype.AttemptError{failed}}, []int{1, 2}},
	} {
		got := []int{}
		for _, e := range taskview.AttemptErrors(c.t) {
			got = append(got, e.Attempt)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: attempts %v, want %v", c.name, got, c.want)
		}
	}
}
