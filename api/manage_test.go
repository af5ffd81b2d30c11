package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

func TestExecuteBatch(t *testing.T) {
	eachBackend(t, Options{MaxBatch: 3}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		good, other := pyfixture.Fixture(t, "args_simple"), pyfixture.Fixture(t, "args_empty")
		unknown := uuid.NewString()
		cases := []struct {
			name   string
			body   any
			status int
			detail string   // for an error
			params []string // for success: the stored argument payloads
			json   bool
		}{
			{name: "payloads", body: map[string]any{"function_id": fnID, "payloads": []string{good, other, good}},
				status: 200, params: []string{good, other, good}},
			{name: "one payload", body: map[string]any{"function_id": fnID, "payloads": []string{other}},
				status: 200, params: []string{other}},
			{name: "calls", body: map[string]any{"function_id": fnID, "calls": []any{
				map[string]any{"args": []any{1, "two"}}, map[string]any{"kwargs": map[string]any{"k": []int{3}}}, map[string]any{}}},
				status: 200, json: true, params: []string{
					`{"args":[1,"two"],"kwargs":{}}`, `{"args":[],"kwargs":{"k":[3]}}`, `{"args":[],"kwargs":{}}`}},
			{name: "bad base64", body: map[string]any{"function_id": fnID, "payloads": []string{good, "@@@"}},
				status: 400, detail: "payloads[1]: payload is not valid base64"},
			{name: "not an args pair", body: map[string]any{"function_id": fnID, "payloads": []string{pyfixture.Fixture(t, "args_not_pair"), good}},
				status: 400, detail: "payloads[0]: "},
			{name: "payload not a string", body: map[string]any{"function_id": fnID, "payloads": []any{good, good, 3}},
				status: 422, detail: "payloads[2]: must be a string"},
			{name: "args not a list", body: map[string]any{"function_id": fnID, "calls": []any{map[string]any{}, map[string]any{"args": 1}}},
				status: 422, detail: `calls[1]: field "args" must be a JSON array`},
			{name: "kwargs not an object", body: map[string]any{"function_id": fnID, "calls": []any{map[string]any{"kwargs": []int{}}}},
				status: 422, detail: `calls[0]: field "kwargs" must be a JSON object`},
			{name: "call not an object", body: map[string]any{"function_id": fnID, "calls": []any{[]int{1}}},
				status: 422, detail: "calls[0]: must be a JSON object"},
			{name: "unknown call field", body: map[string]any{"function_id": fnID, "calls": []any{map[string]any{"arg": []int{1}}}},
				status: 422, detail: `calls[0]: unknown field "arg"`},
			{name: "both", body: map[string]any{"function_id": fnID, "payloads": []string{good}, "calls": []any{}},
				status: 422, detail: "not both"},
			{name: "neither", body: map[string]any{"function_id": fnID}, status: 422, detail: `field "payloads"`},
			{name: "not a list", body: map[string]any{"function_id": fnID, "payloads": good}, status: 422, detail: `field "payloads" must be a JSON array`},
			{name: "empty", body: map[string]any{"function_id": fnID, "calls": []any{}}, status: 422, detail: "is empty"},
			{name: "too many", body: map[string]any{"function_id": fnID, "payloads": []string{good, good, good, good}},
				status: 413, detail: "a batch of 4 calls is over the limit of 3"},
			{name: "no function id", body: map[string]any{"payloads": []string{good}}, status: 422, detail: `field "function_id" is required`},
			{name: "bad function id", body: map[string]any{"function_id": "nope", "payloads": []string{good}}, status: 400, detail: "not a UUID"},
			{name: "unknown function", body: map[string]any{"function_id": unknown, "payloads": []string{good}},
				status: 404, detail: "function " + unknown + " not found"},
			{name: "not an object", body: "[1]", status: 422, detail: "must be a JSON object"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				before, err := e.st.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				r := e.do("POST", "/execute_batch", c.body)
				if c.status != 200 {
					expectError(t, r, c.status, c.detail)
					after, _ := e.st.Stats(ctx)
					if after.Submitted != before.Submitted {
						t.Fatalf("a refused batch created %d tasks", after.Submitted-before.Submitted)
					}
					return
				}
				if r.status != 200 || !slices.Equal(r.keys(), []string{"task_ids"}) {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				ids, _ := r.body["task_ids"].([]any)
				if len(ids) != len(c.params) {
					t.Fatalf("%d task ids for %d calls", len(ids), len(c.params))
				}
				for i, v := range ids {
					id, _ := v.(string)
					if !isUUID4(id) {
						t.Fatalf("task id %v", v)
					}
					task, err := e.st.GetTask(ctx, id)
					if err != nil || task.Status != faastype.Queued || task.FunctionID != fnID || task.WantJSON != c.json {
						t.Fatalf("task %d: %+v, %v", i, task, err)
					}
					want := c.params[i]
					if c.json {
						want = base64.StdEncoding.EncodeToString(pickle.JSONArgsPayload(want))
					}
					if task.ParamPayload != want {
						t.Fatalf("task %d: arguments %q, want %q", i, task.ParamPayload, want)
					}
				}
				// Queued in order: the dispatcher claims them so.
				cs, err := e.st.Claim(ctx, "w", len(ids), time.Minute)
				if err != nil || len(cs) != len(ids) {
					t.Fatalf("Claim = %v, %v", cs, err)
				}
				for i, cl := range cs {
					if cl.TaskID != ids[i] {
						t.Fatalf("claim %d is %s, want %s", i, cl.TaskID, ids[i])
					}
				}
			})
		}
	})
}

func TestCancelTask(t *testing.T) {
	type setup func(t *testing.T, e *env, fnID string) string // returns the task id to cancel
	queued := func(t *testing.T, e *env, fnID string) string {
		return e.execute(fnID, pyfixture.Fixture(t, "args_simple"))
	}
	running := func(t *testing.T, e *env, fnID string) string {
		id := queued(t, e, fnID)
		if cs, err := e.st.Claim(context.Background(), "w", 1, time.Minute); err != nil || len(cs) != 1 || cs[0].TaskID != id {
			t.Fatalf("Claim = %v, %v", cs, err)
		}
		return id
	}
	completed := func(t *testing.T, e *env, fnID string) string {
		id := queued(t, e, fnID)
		completeNext(t, e.st, id, store.Outcome{Status: faastype.Completed, Result: "gANLKi4="})
		return id
	}
	cases := []struct {
		name    string
		setup   setup
		path    string // instead of /task/<id>
		status  int
		detail  string
		was     string
		message string
	}{
		{name: "queued", setup: queued, status: 200, was: "QUEUED", message: "cancelled before it started"},
		{name: "running", setup: running, status: 200, was: "RUNNING", message: "cancelled while it was running"},
		{name: "completed", setup: completed, status: 409, detail: "is already COMPLETED; only a QUEUED or RUNNING task can be cancelled"},
		{name: "cancelled", setup: func(t *testing.T, e *env, fnID string) string {
			id := queued(t, e, fnID)
			if r := e.do("DELETE", "/task/"+id, nil); r.status != 200 {
				t.Fatalf("first cancel: %d %s", r.status, r.raw)
			}
			return id
		}, status: 409, detail: "is already FAILED"},
		{name: "unknown", setup: func(*testing.T, *env, string) string { return uuid.NewString() }, status: 404, detail: "not found"},
		{name: "a function's id", setup: func(_ *testing.T, _ *env, fnID string) string { return fnID }, status: 404, detail: "not found"},
		{name: "not a uuid", path: "/task/nope", status: 400, detail: `task_id "nope" is not a UUID`},
	}
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				path := c.path
				var id string
				if c.setup != nil {
					id = c.setup(t, e, fnID)
					path = "/task/" + strings.ToUpper(id) // any UUID spelling
				}
				r := e.do("DELETE", path, nil)
				if c.status != 200 {
					expectError(t, r, c.status, c.detail)
					return
				}
				want := map[string]any{"task_id": id, "status": "FAILED", "previous_status": c.was}
				var got map[string]any
				_ = json.Unmarshal([]byte(r.raw), &got)
				if r.status != 200 || !mapsEqual(got, want) {
					t.Fatalf("%d %s, want %v", r.status, r.raw, want)
				}
				res := e.do("GET", "/result/"+id, nil)
				errObj, _ := res.body["error"].(map[string]any)
				if res.str("status") != "FAILED" || res.str("result") == "" || errObj["kind"] != "CANCELLED" ||
					!strings.Contains(errObj["message"].(string), c.message) {
					t.Fatalf("result after cancel: %s", res.raw)
				}
			})
		}
	})
}

func mapsEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
