package api

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// listTaskIDs reads GET /tasks+query and returns the ids it lists, checking
// the answer decodes as tasksResponse.
func (e *env) listTaskIDs(query string) (response, []dashTask) {
	e.t.Helper()
	r := e.do("GET", "/tasks"+query, nil)
	if r.status != 200 {
		return r, nil
	}
	var body tasksResponse
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || body.Tasks == nil {
		e.t.Fatalf("GET /tasks%s: %v: %.300s", query, err, r.raw)
	}
	return r, body.Tasks
}

func TestListTasks(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		fnID := e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x): return 2 * x"}).str("function_id")
		var ids []string // oldest first
		for i := range 4 {
			ids = append(ids, e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []int{i}}).str("task_id"))
		}
		completeNext(t, e.st, ids[0], store.Outcome{Status: faastype.Completed, Result: "gANLAC4=", ResultJSON: "0"})
		completeNext(t, e.st, ids[1], store.Outcome{Status: faastype.Failed,
			Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom"}})
		if _, err := e.st.Claim(ctx, "node-a", 1, time.Minute); err != nil { // ids[2] RUNNING
			t.Fatal(err)
		}

		for _, c := range []struct {
			query  string
			status int
			want   []string // ids, newest first; or the error's detail
		}{
			{"", 200, []string{ids[3], ids[2], ids[1], ids[0]}},
			{"?limit=2", 200, []string{ids[3], ids[2]}},
			{"?limit=0", 200, nil},
			{"?limit=200", 200, []string{ids[3], ids[2], ids[1], ids[0]}},
			{"?status=QUEUED", 200, []string{ids[3]}},
			{"?status=RUNNING", 200, []string{ids[2]}},
			{"?status=FAILED", 200, []string{ids[1]}},
			{"?status=COMPLETED&limit=1", 200, []string{ids[0]}},
			{"?status=FAILED&limit=0", 200, nil},
			{"?status=", 200, []string{ids[3], ids[2], ids[1], ids[0]}},
			{"?limit=201", 400, []string{"limit must be a whole number from 0 to 200"}},
			{"?limit=-1", 400, []string{"limit must be a whole number from 0 to 200"}},
			{"?limit=many", 400, []string{"limit must be a whole number from 0 to 200, not \"many\""}},
			{"?status=done", 400, []string{"status must be QUEUED, RUNNING, COMPLETED or FAILED, not \"done\""}},
			{"?status=failed", 400, []string{"status must be QUEUED, RUNNING, COMPLETED or FAILED"}},
			{"?limit=1&status=x", 400, []string{"status must be"}},
		} {
			r, tasks := e.listTaskIDs(c.query)
			if c.status != 200 {
				expectError(t, r, c.status, c.want[0])
				continue
			}
			var got []string
			for _, tk := range tasks {
				got = append(got, tk.TaskID)
			}
			if r.status != 200 || !slices.Equal(got, c.want) {
				t.Errorf("GET /tasks%s: %d, ids %v, want %v", c.query, r.status, got, c.want)
			}
		}

		// What each task says.
		_, tasks := e.listTaskIDs("")
		for i, want := range []struct {
			status   faastype.Status
			kind     faastype.ErrorKind
			started  bool
			finished bool
		}{
			{faastype.Queued, "", false, false},
			{faastype.Running, "", true, false},
			{faastype.Failed, faastype.KindUserException, true, true},
			{faastype.Completed, "", true, true},
		} {
			got := tasks[i]
			if got.Status != want.status || got.ErrorKind != want.kind || got.FunctionID != fnID || got.FunctionName != "double" ||
				got.CreatedAt.IsZero() || (got.StartedAt != nil) != want.started || (got.FinishedAt != nil) != want.finished ||
				(got.Latency != nil) != want.finished {
				t.Errorf("tasks[%d] = %+v, want %+v", i, got, want)
			}
		}
	})
}

func TestListTasksIsPerTenant(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{Auth: testAuth(t)})
	alice, bob := e.as(aliceToken), e.as(bobToken)
	fn := alice.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f(): return 1"}).str("function_id")
	tid := alice.do("POST", "/execute_function", map[string]any{"function_id": fn, "args": []int{}}).str("task_id")
	for _, c := range []struct {
		who  *env
		want []string
	}{
		{alice, []string{tid}},
		{e.as(aliceSpare), []string{tid}}, // alice's other token
		{bob, nil},
	} {
		r, tasks := c.who.listTaskIDs("")
		var got []string
		for _, tk := range tasks {
			got = append(got, tk.TaskID)
		}
		if r.status != 200 || !slices.Equal(got, c.want) {
			t.Errorf("%s: %d, ids %v, want %v", c.who.token, r.status, got, c.want)
		}
	}
	if r := e.do("GET", "/tasks", nil); r.status != 401 {
		t.Errorf("without a token: %d %s", r.status, r.raw)
	}
}
