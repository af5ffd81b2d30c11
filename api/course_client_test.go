package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
)

// TestCourseClient runs a Python client written the way the course
// project's tests are (requests, dill, codecs base64 with newlines) against
// the API, while this test plays the worker through store.Claim and
// store.Complete.
func TestCourseClient(t *testing.T) {
	pyfixture.Need(t)
	if _, err := pyfixture.Output(nil, "-c", "import requests, dill"); err != nil {
		t.Fatalf("python3 lacks requests or dill (run make deps-test): %v", err)
	}
	// The value the worker returns for task 1: serialize(42), made by Python
	// the codecs way.
	var result42 string
	pyfixture.Run(t, `
import codecs, dill, json, sys
json.dump(codecs.encode(dill.dumps(42), "base64").decode(), sys.stdout)
`, nil, &result42)

	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		workerDone := make(chan error, 1)
		go func() { workerDone <- playWorker(ctx, e.st, result42) }()

		scratch := t.TempDir()
		out, err := pyfixture.Output(nil, "testdata/course_client.py", e.srv.URL, scratch)
		cancel()
		if err != nil {
			t.Fatalf("course client: %v", err)
		}
		if err := <-workerDone; err != nil {
			t.Fatalf("worker: %v", err)
		}
		var got struct {
			PayloadHasNewlines bool     `json:"payload_has_newlines"`
			Task1Status        string   `json:"task1_status"`
			Task1Value         int      `json:"task1_value"`
			Task1Statuses      []string `json:"task1_statuses"`
			Task2Status        string   `json:"task2_status"`
			Task2ErrorKind     string   `json:"task2_error_kind"`
			Task2Raised        string   `json:"task2_raised"`
			ByrefStatus        int      `json:"byref_status"`
			ByrefDetail        string   `json:"byref_detail"`
			BadArgsStatus      int      `json:"bad_args_status"`
			BadArgsDetail      string   `json:"bad_args_detail"`
			BadIDStatus        int      `json:"bad_id_status"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("client output %s: %v", out, err)
		}
		if !got.PayloadHasNewlines {
			t.Error("the client's payload had no newlines; the codecs case was not exercised")
		}
		if got.Task1Status != "COMPLETED" || got.Task1Value != 42 {
			t.Errorf("task 1: %s %d", got.Task1Status, got.Task1Value)
		}
		for _, s := range got.Task1Statuses {
			if !slices.Contains([]string{"QUEUED", "RUNNING", "COMPLETED"}, s) {
				t.Errorf("task 1 went through status %q", s)
			}
		}
		if got.Task2Status != "FAILED" || got.Task2ErrorKind != "TIMEOUT" || got.Task2Raised != "TimeoutError: task exceeded 30s" {
			t.Errorf("task 2: %s %s %q", got.Task2Status, got.Task2ErrorKind, got.Task2Raised)
		}
		if got.ByrefStatus != 400 || !strings.Contains(got.ByrefDetail, `module "tests.mod"`) || !strings.Contains(got.ByrefDetail, "__main__") {
			t.Errorf("by-reference registration: %d %q", got.ByrefStatus, got.ByrefDetail)
		}
		if got.BadArgsStatus != 400 || !strings.Contains(got.BadArgsDetail, "got a pickled int") {
			t.Errorf("bad arguments: %d %q", got.BadArgsStatus, got.BadArgsDetail)
		}
		if got.BadIDStatus != 400 {
			t.Errorf("bad task id: %d", got.BadIDStatus)
		}
	})
}

// playWorker completes the first task it claims with result and fails the
// second with a TIMEOUT, then returns.
func playWorker(ctx context.Context, st *store.Store, result string) error {
	outcomes := []store.Outcome{
		{Status: faastype.Completed, Result: result, Stdout: "", Timings: &faastype.Timings{Total: 0.001}},
		{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindTimeout, Message: "task exceeded 30s"}},
	}
	ids, stop := st.SubscribeTasks(ctx)
	defer stop()
	for len(outcomes) > 0 {
		cs, err := st.Claim(ctx, "course-test-worker", 1, time.Minute)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			select {
			case <-ids:
			case <-time.After(50 * time.Millisecond): // the hint may have come before Claim
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if _, err := st.Complete(ctx, cs[0].Ref(), outcomes[0]); err != nil {
			return err
		}
		outcomes = outcomes[1:]
	}
	return nil
}
