package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// syncBuffer collects log output from concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t     *testing.T
	rdb   redis.UniversalClient
	st    *store.Store
	h     *Handler
	srv   *httptest.Server
	logs  *syncBuffer
	token string // sent as a bearer token when set
}

// as is e with requests sent with token ("": none).
func (e *env) as(token string) *env {
	c := *e
	c.token = token
	return &c
}

func newEnv(t *testing.T, rdb redis.UniversalClient, opts Options) *env {
	t.Helper()
	return newEnvWith(t, rdb, store.Options{}, opts)
}

// newEnvWith is newEnv with the store's options.
func newEnvWith(t *testing.T, rdb redis.UniversalClient, sopts store.Options, opts Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := store.New(rdb, sopts)
	h := New(st, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	select {
	case <-h.waiter.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the long-poll subscription did not come up")
	}
	return &env{t: t, rdb: rdb, st: st, h: h, srv: srv, logs: logs}
}

// eachBackend runs fn against a handler on a real redis-server and on
// miniredis.
func eachBackend(t *testing.T, opts Options, fn func(t *testing.T, e *env)) {
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, newEnv(t, b.Start(t), opts))
		})
	}
}

type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// keys are the body's keys, sorted.
func (r response) keys() []string {
	var ks []string
	for k := range r.body {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// do sends a request; body is sent as is if it is a string, else as JSON.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q, body %.200s", req.Method, req.URL.Path, ct, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		e.t.Fatalf("%s %s: body is not a JSON object: %v: %.200s", req.Method, req.URL.Path, err, raw)
	}
	return r
}

// expectError checks an error answer: status and a detail containing want.
func expectError(t *testing.T, r response, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %.300s", r.status, status, r.raw)
	}
	if !slices.Equal(r.keys(), []string{"detail"}) {
		t.Fatalf("error body keys %v, want [detail]: %.300s", r.keys(), r.raw)
	}
	if !strings.Contains(r.str("detail"), want) {
		t.Fatalf("detail %q does not contain %q", r.str("detail"), want)
	}
}

func (e *env) register(payload string) string {
	e.t.Helper()
	r := e.do("POST", "/register_function", map[string]any{"name": "f", "payload": payload})
	if r.status != 200 {
		e.t.Fatalf("register: %d %s", r.status, r.raw)
	}
	return r.str("function_id")
}

func (e *env) execute(fnID, payload string) string {
	e.t.Helper()
	r := e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "payload": payload})
	if r.status != 200 {
		e.t.Fatalf("execute: %d %s", r.status, r.raw)
	}
	return r.str("task_id")
}

func isUUID4(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.Version() == 4 && u.String() == s
}

func TestRegisterAndExecute(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fn := pyfixture.Fixture(t, "closure")
		r := e.do("POST", "/register_function", map[string]any{"name": "adder", "payload": fn})
		if r.status != 200 || !slices.Equal(r.keys(), []string{"function_id"}) || !isUUID4(r.str("function_id")) {
			t.Fatalf("register: %d %s", r.status, r.raw)
		}
		fnID := r.str("function_id")
		ctx := context.Background()
		h, err := e.rdb.HGetAll(ctx, fnID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["fn_name"] != "adder" || h["fn_payload"] != fn || h["isolation"] != "warm" || len(h["fn_hash"]) != 64 {
			t.Fatalf("function hash %v", h)
		}

		args := pyfixture.Fixture(t, "args_simple")
		r = e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "payload": args})
		if r.status != 200 || !slices.Equal(r.keys(), []string{"task_id"}) || !isUUID4(r.str("task_id")) {
			t.Fatalf("execute: %d %s", r.status, r.raw)
		}
		taskID := r.str("task_id")
		task, err := e.st.GetTask(ctx, taskID)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != faastype.Queued || task.FunctionID != fnID || task.FnPayload != fn ||
			task.ParamPayload != args || task.FnHash != h["fn_hash"] || task.Isolation != faastype.Warm {
			t.Fatalf("task %+v", task)
		}

		r = e.do("GET", "/status/"+taskID, nil)
		if r.status != 200 || !slices.Equal(r.keys(), []string{"status", "task_id"}) || r.str("status") != "QUEUED" || r.str("task_id") != taskID {
			t.Fatalf("status: %d %s", r.status, r.raw)
		}
		r = e.do("GET", "/result/"+taskID, nil)
		want := []string{"attempts", "created_at", "errors", "result", "status", "stderr", "stdout", "task_id", "timings"}
		if r.status != 200 || !slices.Equal(r.keys(), want) || r.str("status") != "QUEUED" || r.body["result"] != nil || r.body["timings"] != nil {
			t.Fatalf("result: %d %s", r.status, r.raw)
		}
		// Upper-case and braced UUIDs name the same task.
		r = e.do("GET", "/status/"+strings.ToUpper(taskID), nil)
		if r.status != 200 || r.str("task_id") != taskID {
			t.Fatalf("status of upper-case id: %d %s", r.status, r.raw)
		}
	})
}

func TestRegisterIsolation(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		for _, c := range []struct {
			body map[string]any
			want faastype.Isolation
		}{
			{map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "math_sqrt"), "isolation": "fresh"}, faastype.Fresh},
			{map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "math_sqrt"), "isolation": "warm"}, faastype.Warm},
			{map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "math_sqrt"), "isolation": nil}, faastype.Warm},
			{map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "math_sqrt"), "extra": 1}, faastype.Warm},
		} {
			r := e.do("POST", "/register_function", c.body)
			if r.status != 200 {
				t.Fatalf("%v: %d %s", c.body, r.status, r.raw)
			}
			f, err := e.st.GetFunction(context.Background(), r.str("function_id"))
			if err != nil || f.Isolation != c.want {
				t.Fatalf("%v: stored %+v, %v", c.body, f, err)
			}
			taskID := e.execute(f.ID, pyfixture.Fixture(t, "args_empty"))
			task, _ := e.st.GetTask(context.Background(), taskID)
			if task.Isolation != c.want {
				t.Fatalf("task isolation %q, want %q", task.Isolation, c.want)
			}
		}
	})
}

func TestRegisterErrors(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fn := pyfixture.Fixture(t, "lambda_p4")
		for _, c := range []struct {
			name   string
			body   any
			status int
			detail string
		}{
			{"empty body", "", 422, "request body is empty"},
			{"not JSON", "name=f&payload=x", 422, "request body must be a JSON object"},
			{"broken JSON", `{"name": "f", "payload": `, 422, "request body is not valid JSON"},
			{"JSON array", `[1, 2]`, 422, "request body must be a JSON object"},
			{"JSON null", `null`, 422, "request body must be a JSON object"},
			{"missing payload", map[string]any{"name": "f"}, 422, `field "payload" is required`},
			{"missing name", map[string]any{"payload": fn}, 422, `field "name" is required`},
			{"name not a string", map[string]any{"name": 5, "payload": fn}, 422, `field "name" must be a string`},
			{"payload null", map[string]any{"name": "f", "payload": nil}, 422, `field "payload" must be a string`},
			{"payload a list", map[string]any{"name": "f", "payload": []string{fn}}, 422, `field "payload" must be a string`},
			{"isolation unknown", map[string]any{"name": "f", "payload": fn, "isolation": "lukewarm"}, 422, `field "isolation": isolation must be "warm" or "fresh", not "lukewarm"`},
			{"isolation not a string", map[string]any{"name": "f", "payload": fn, "isolation": true}, 422, `field "isolation" must be a string`},
			{"payload not base64", map[string]any{"name": "f", "payload": "this is not base64!"}, 400, "payload is not valid base64"},
			{"payload empty", map[string]any{"name": "f", "payload": ""}, 400, "payload is not a valid pickle: empty"},
			{"payload garbage", map[string]any{"name": "f", "payload": "aGVsbG8gd29ybGQ="}, 400, "payload is not a valid pickle"},
			{"payload a str", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "data_str_p4")}, 400, "payload is a pickled str, not a function"},
			{"payload a dict", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "data_dict_p2")}, 400, "payload is a pickled dict, not a function"},
			{"payload args", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "args_simple")}, 400, "payload is a pickled tuple of 2 items, not a function"},
			{"by reference", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "byref_tests_mod")}, 400,
				`function is pickled by reference to module "tests.mod", which the sandbox does not have; dill does this for functions defined at the top level of an importable module. Send the module with the function (a bundle`},
			{"module import", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "uses_mymod_recurse")}, 400, `payload refers to module "mymod"`},
		} {
			t.Run(c.name, func(t *testing.T) {
				expectError(t, e.do("POST", "/register_function", c.body), c.status, c.detail)
			})
		}
		if n, _ := e.rdb.DBSize(context.Background()).Result(); n != 0 {
			t.Fatalf("rejected registrations left %d keys in Redis", n)
		}
	})
}

func TestBodyTooLarge(t *testing.T) {
	eachBackend(t, Options{MaxBodyBytes: 4096}, func(t *testing.T, e *env) {
		big := map[string]any{"name": "f", "payload": strings.Repeat("A", 5000)}
		for _, path := range []string{"/register_function", "/execute_function"} {
			expectError(t, e.do("POST", path, big), 413, "request body is larger than 4096 bytes")
			// Without a Content-Length (chunked), the limit holds while reading.
			j, _ := json.Marshal(big)
			req, _ := http.NewRequest("POST", e.srv.URL+path, io.MultiReader(bytes.NewReader(j)))
			req.ContentLength = -1
			expectError(t, e.send(req), 413, "request body is larger than 4096 bytes")
		}
		// Just under the limit is fine.
		r := e.do("POST", "/register_function", map[string]any{"name": strings.Repeat("n", 3900), "payload": pyfixture.Fixture(t, "math_sqrt")})
		if r.status != 200 {
			t.Fatalf("body under the limit: %d %s", r.status, r.raw)
		}
	})
}

func TestExecuteErrors(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		args := pyfixture.Fixture(t, "args_simple")
		unknown := uuid.NewString()
		for _, c := range []struct {
			name   string
			body   any
			status int
			detail string
		}{
			{"not JSON", "{", 422, "request body is not valid JSON"},
			{"missing function_id", map[string]any{"payload": args}, 422, `field "function_id" is required`},
			{"missing payload", map[string]any{"function_id": fnID}, 422, `field "payload" is required`},
			{"function_id a number", map[string]any{"function_id": 7, "payload": args}, 422, `field "function_id" must be a string`},
			{"function_id not a UUID", map[string]any{"function_id": "fn-1", "payload": args}, 400, `function_id "fn-1" is not a UUID`},
			{"unknown function", map[string]any{"function_id": unknown, "payload": args}, 404, "function " + unknown + " not found"},
			{"payload not base64", map[string]any{"function_id": fnID, "payload": "%%%"}, 400, "payload is not valid base64"},
			{"payload garbage", map[string]any{"function_id": fnID, "payload": "AAAA"}, 400, "payload is not a valid pickle"},
			{"payload an int", map[string]any{"function_id": fnID, "payload": pyfixture.Fixture(t, "args_int")}, 400, "payload must be serialize((args_tuple, kwargs_dict)), got a pickled int"},
			{"payload a 3-tuple", map[string]any{"function_id": fnID, "payload": pyfixture.Fixture(t, "args_not_pair")}, 400, "got a pickled tuple of 3 items"},
			{"kwargs a list", map[string]any{"function_id": fnID, "payload": pyfixture.Fixture(t, "args_kwargs_list")}, 400, "its second item is a pickled list, not a dict"},
			{"argument from a client module", map[string]any{"function_id": fnID, "payload": pyfixture.Fixture(t, "args_point")}, 400, `arguments refer to tests.mod.Point from module "tests.mod"`},
			{"delay and run_at", map[string]any{"function_id": fnID, "payload": args, "delay": 5, "run_at": "2030-01-01T00:00:00Z"}, 422, `give either "delay" or "run_at", not both`},
			{"delay text", map[string]any{"function_id": fnID, "payload": args, "delay": "soon"}, 422, `field "delay" must be a duration`},
			{"delay negative", map[string]any{"function_id": fnID, "payload": args, "delay": -3}, 422, `field "delay" must be a duration`},
			{"delay too long", map[string]any{"function_id": fnID, "payload": args, "delay": "9000h"}, 422, "from 0 to 8784h0m0s"},
			{"run_at not a time", map[string]any{"function_id": fnID, "payload": args, "run_at": "tomorrow"}, 422, `field "run_at" must be an RFC 3339 time`},
			{"run_at too far", map[string]any{"function_id": fnID, "payload": args, "run_at": "2999-01-01T00:00:00Z"}, 422, `field "run_at" is more than`},
			{"retries a string", map[string]any{"function_id": fnID, "payload": args, "retries": "3"}, 422, `field "retries": retries must be an object`},
			{"retries unknown field", map[string]any{"function_id": fnID, "payload": args, "retries": map[string]any{"max": 1, "tries": 2}}, 422, `unknown field "tries"`},
			{"retries bad backoff", map[string]any{"function_id": fnID, "payload": args, "retries": map[string]any{"max": 1, "backoff": "random"}}, 422, `backoff must be "exponential", "linear" or "fixed"`},
			{"retries too many", map[string]any{"function_id": fnID, "payload": args, "retries": 1000}, 422, "max must be a whole number from 0 to 100"},
			{"retries on a platform kind", map[string]any{"function_id": fnID, "payload": args, "retries": map[string]any{"max": 1, "on": []string{"CANCELLED"}}}, 422, `on: "CANCELLED" is neither`},
		} {
			t.Run(c.name, func(t *testing.T) {
				expectError(t, e.do("POST", "/execute_function", c.body), c.status, c.detail)
			})
		}
		if n, _ := e.st.QueueDepth(context.Background()); n != 0 {
			t.Fatalf("rejected executions queued %d tasks", n)
		}
		// The exact 404 body of the contract.
		r := e.do("POST", "/execute_function", map[string]any{"function_id": unknown, "payload": args})
		if r.raw != fmt.Sprintf("{\"detail\":\"function %s not found\"}\n", unknown) {
			t.Fatalf("404 body %q", r.raw)
		}
	})
}

func TestStatusAndResultErrors(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		unknown := uuid.NewString()
		for _, route := range []string{"/status/", "/result/"} {
			expectError(t, e.do("GET", route+"not-a-uuid", nil), 400, `task_id "not-a-uuid" is not a UUID`)
			expectError(t, e.do("GET", route+"123", nil), 400, "is not a UUID")
			expectError(t, e.do("GET", route+unknown, nil), 404, "task "+unknown+" not found")
		}
		// A function id is not a task id.
		fnID := e.register(pyfixture.Fixture(t, "math_sqrt"))
		expectError(t, e.do("GET", "/status/"+fnID, nil), 404, "task "+fnID+" not found")
		expectError(t, e.do("GET", "/result/"+fnID+"?wait=5", nil), 404, "task "+fnID+" not found")

		taskID := e.execute(fnID, pyfixture.Fixture(t, "args_empty"))
		for _, w := range []string{"abc", "-1", "-1s", "NaN", "Inf", "5x", "1e400"} {
			expectError(t, e.do("GET", "/result/"+taskID+"?wait="+w, nil), 400, "wait must be a duration")
		}
	})
}

func TestParseWait(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want time.Duration
		ok   bool
	}{
		{nil, 0, true},
		{[]string{""}, 0, true},
		{[]string{"5s"}, 5 * time.Second, true},
		{[]string{"5"}, 5 * time.Second, true},
		{[]string{"0.25"}, 250 * time.Millisecond, true},
		{[]string{"1m30s"}, 60 * time.Second, true}, // capped
		{[]string{"3600"}, 60 * time.Second, true},  // capped
		{[]string{"0"}, 0, true},
		{[]string{"1s", "2s"}, 2 * time.Second, true}, // the last one counts
		{[]string{"-0.5"}, 0, false},
		{[]string{"soon"}, 0, false},
	} {
		got, err := parseWait(c.in, time.Minute)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// completeNext plays the worker: it claims the next task and records an
// outcome, through the same store calls a dispatcher makes.
func completeNext(t *testing.T, st *store.Store, want string, o store.Outcome) {
	t.Helper()
	ctx := context.Background()
	cs, err := st.Claim(ctx, "test-worker", 1, time.Minute)
	if err != nil || len(cs) != 1 || cs[0].TaskID != want {
		t.Fatalf("Claim = %+v, %v; want %s", cs, err, want)
	}
	if ok, err := st.Complete(ctx, cs[0].Ref(), o); !ok || err != nil {
		t.Fatalf("Complete = %v, %v", ok, err)
	}
}

func TestResultOfFinishedTasks(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		okID := e.execute(fnID, pyfixture.Fixture(t, "args_simple"))
		failID := e.execute(fnID, pyfixture.Fixture(t, "args_simple"))

		completeNext(t, e.st, okID, store.Outcome{
			Status: faastype.Completed, Result: "gANLKi4=", Stdout: "hi\n",
			Timings: &faastype.Timings{Run: 0.5, Total: 1},
		})
		r := e.do("GET", "/result/"+okID, nil)
		want := []string{"attempts", "created_at", "errors", "finished_at", "result", "started_at", "status", "stderr", "stdout", "task_id", "timings"}
		if r.status != 200 || !slices.Equal(r.keys(), want) || r.str("status") != "COMPLETED" || r.str("result") != "gANLKi4=" ||
			r.str("stdout") != "hi\n" || r.body["attempts"] != 1.0 {
			t.Fatalf("completed result: %d %s", r.status, r.raw)
		}
		if tm, _ := r.body["timings"].(map[string]any); tm["run"] != 0.5 || tm["total"] != 1.0 {
			t.Fatalf("timings %v", r.body["timings"])
		}

		r = e.do("GET", "/status/"+failID, nil)
		if r.str("status") != "QUEUED" {
			t.Fatalf("status %s", r.raw)
		}
		completeNext(t, e.st, failID, store.Outcome{
			Status: faastype.Failed, Stderr: "Traceback...\n",
			Error: &faastype.TaskError{Kind: faastype.KindTimeout, Message: "task exceeded 30s"},
		})
		r = e.do("GET", "/result/"+failID+"?wait=5s", nil)
		want = []string{"attempts", "created_at", "error", "errors", "finished_at", "result", "started_at", "status", "stderr", "stdout", "task_id", "timings"}
		if r.status != 200 || !slices.Equal(r.keys(), want) || r.str("status") != "FAILED" || r.str("result") == "" {
			t.Fatalf("failed result: %d %s", r.status, r.raw)
		}
		errObj, _ := r.body["error"].(map[string]any)
		if errObj["kind"] != "TIMEOUT" || errObj["message"] != "task exceeded 30s" || errObj["traceback"] != "" || len(errObj) != 3 {
			t.Fatalf("error %v", r.body["error"])
		}
		if r := e.do("GET", "/status/"+failID, nil); r.str("status") != "FAILED" {
			t.Fatalf("status %s", r.raw)
		}
	})
}

// waitForWaiters blocks until n long-polls are subscribed.
func waitForWaiters(t *testing.T, h *Handler, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.waiter.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls waiting, want %d", h.waiter.Waiting(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A long-poll returns as soon as a worker completes the task. The wait asked
// for is ten minutes, far beyond the test's own deadline: only an early
// return passes.
func TestLongPollReturnsWhenTaskFinishes(t *testing.T) {
	eachBackend(t, Options{MaxWait: 10 * time.Minute}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		for _, finish := range []string{"complete", "cancel"} {
			taskID := e.execute(fnID, pyfixture.Fixture(t, "args_simple"))
			got := make(chan response, 1)
			go func() { got <- e.do("GET", "/result/"+taskID+"?wait=10m", nil) }()
			waitForWaiters(t, e.h, 1)
			select {
			case r := <-got:
				t.Fatalf("long-poll returned before the task finished: %s", r.raw)
			default:
			}
			wantStatus := "COMPLETED"
			if finish == "complete" {
				completeNext(t, e.st, taskID, store.Outcome{Status: faastype.Completed, Result: "gANLKi4="})
			} else {
				wantStatus = "FAILED"
				if c, err := e.st.Cancel(context.Background(), taskID); !c.Cancelled || err != nil {
					t.Fatalf("Cancel = %+v, %v", c, err)
				}
			}
			select {
			case r := <-got:
				if r.status != 200 || r.str("status") != wantStatus || r.str("result") == "" {
					t.Fatalf("%s: long-poll answered %d %s", finish, r.status, r.raw)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: long-poll did not return after the task finished", finish)
			}
			if n := e.h.waiter.Waiting(); n != 0 {
				t.Fatalf("%d waiters left behind", n)
			}
		}
	})
}

func TestLongPollEndsWithCurrentStatus(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		taskID := e.execute(fnID, pyfixture.Fixture(t, "args_simple"))
		r := e.do("GET", "/result/"+taskID+"?wait=0.2", nil)
		if r.status != 200 || r.str("status") != "QUEUED" || r.body["result"] != nil {
			t.Fatalf("long-poll that timed out: %d %s", r.status, r.raw)
		}
		if _, err := e.st.Claim(context.Background(), "w", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		r = e.do("GET", "/result/"+taskID+"?wait=100ms", nil)
		if r.status != 200 || r.str("status") != "RUNNING" || r.body["result"] != nil || r.body["attempts"] != 1.0 {
			t.Fatalf("long-poll that timed out: %d %s", r.status, r.raw)
		}
		if n := e.h.waiter.Waiting(); n != 0 {
			t.Fatalf("%d waiters left behind", n)
		}
	})
}

// Many long-polls on many tasks share one subscription and each returns
// with its own task.
func TestManyLongPolls(t *testing.T) {
	eachBackend(t, Options{MaxWait: 10 * time.Minute}, func(t *testing.T, e *env) {
		fnID := e.register(pyfixture.Fixture(t, "fib"))
		const n = 20
		ids := make([]string, n)
		for i := range ids {
			ids[i] = e.execute(fnID, pyfixture.Fixture(t, "args_simple"))
		}
		got := make(chan response, 2*n)
		for _, id := range ids {
			for range 2 {
				go func() { got <- e.do("GET", "/result/"+id+"?wait=600", nil) }()
			}
		}
		waitForWaiters(t, e.h, n)
		for _, id := range ids {
			completeNext(t, e.st, id, store.Outcome{Status: faastype.Completed, Result: "gAN9cQAu", Stdout: id})
		}
		for range 2 * n {
			select {
			case r := <-got:
				if r.status != 200 || r.str("status") != "COMPLETED" || r.str("stdout") != r.str("task_id") {
					t.Fatalf("long-poll answered %d %s", r.status, r.raw)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a long-poll did not return")
			}
		}
	})
}

func TestHealthz(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		r := e.do("GET", "/healthz", nil)
		if r.status != 200 || r.raw != "{\"status\":\"ok\"}\n" {
			t.Fatalf("healthz: %d %s", r.status, r.raw)
		}
	})
	t.Run("redis down", func(t *testing.T) {
		rdb := redistest.Start(t)
		e := newEnv(t, rdb, Options{})
		if err := rdb.ShutdownNoSave(context.Background()).Err(); err != nil && !strings.Contains(err.Error(), "EOF") {
			t.Logf("shutdown: %v", err)
		}
		r := e.do("GET", "/healthz", nil)
		if r.status != 503 || r.str("status") != "unavailable" {
			t.Fatalf("healthz with Redis down: %d %s", r.status, r.raw)
		}
		// The other routes say so too, as JSON.
		expectError(t, e.do("GET", "/status/"+uuid.NewString(), nil), 503, "the task store is unavailable")
	})
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		expectError(t, e.do("GET", "/nope", nil), 404, "no route for GET /nope")
		expectError(t, e.do("GET", "/status/", nil), 404, "no route")
		expectError(t, e.do("POST", "/status/"+uuid.NewString()+"/extra", nil), 404, "no route")
		for _, c := range []struct{ method, path, allow string }{
			{"GET", "/register_function", "POST"},
			{"PUT", "/execute_function", "POST"},
			{"POST", "/status/" + uuid.NewString(), "GET"},
			{"DELETE", "/result/" + uuid.NewString(), "GET"},
			{"POST", "/healthz", "GET"},
		} {
			r := e.do(c.method, c.path, nil)
			expectError(t, r, 405, "method "+c.method+" is not allowed")
			if got := r.header.Values("Allow"); !slices.Equal(got, []string{c.allow}) {
				t.Errorf("%s %s: Allow %v, want [%s]", c.method, c.path, got, c.allow)
			}
		}
	})
}

func TestPanicsBecome500(t *testing.T) {
	logs := &syncBuffer{}
	h := &Handler{log: slog.New(slog.NewJSONHandler(logs, nil))}
	srv := httptest.NewServer(h.requestID(h.logRequests(h.recoverPanics(http.HandlerFunc(
		func(http.ResponseWriter, *http.Request) { panic("boom") })))))
	defer srv.Close()
	e := &env{t: t, srv: srv}
	r := e.do("GET", "/anything", nil)
	expectError(t, r, 500, "internal server error (request id ")
	if !strings.Contains(r.str("detail"), r.header.Get("X-Request-Id")) {
		t.Fatalf("detail %q does not carry the request id %q", r.str("detail"), r.header.Get("X-Request-Id"))
	}
	out := logs.String()
	if !strings.Contains(out, `"panic":"boom"`) || !strings.Contains(out, `"status":500`) {
		t.Fatalf("logs do not record the panic and the 500:\n%s", out)
	}
}

// One log line per request, with what an operator needs, and never a
// payload or a credential.
func TestRequestLog(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		payload := pyfixture.Fixture(t, "closure")
		req, _ := http.NewRequest("POST", e.srv.URL+"/register_function",
			strings.NewReader(`{"name": "secret-name", "payload": "`+payload+`"}`))
		req.Header.Set("Authorization", "Bearer hunter2")
		req.Header.Set("X-Request-Id", "req-123")
		r := e.send(req)
		if r.status != 200 || r.header.Get("X-Request-Id") != "req-123" {
			t.Fatalf("register: %d %s %v", r.status, r.raw, r.header)
		}
		e.do("GET", "/result/"+uuid.NewString()+"?wait=1ms", nil)

		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if m["msg"] == "http request" {
				lines = append(lines, m)
			}
		}
		if len(lines) != 2 {
			t.Fatalf("%d request log lines, want 2:\n%s", len(lines), e.logs.String())
		}
		first := lines[0]
		for k, want := range map[string]any{"method": "POST", "path": "/register_function", "status": 200.0, "request_id": "req-123"} {
			if first[k] != want {
				t.Errorf("log %s = %v, want %v", k, first[k], want)
			}
		}
		if b, _ := first["bytes"].(float64); b <= 0 {
			t.Errorf("log bytes = %v", first["bytes"])
		}
		if _, ok := first["duration"]; !ok {
			t.Error("log has no duration")
		}
		if lines[1]["status"] != 404.0 || lines[1]["path"] == nil {
			t.Errorf("second line %v", lines[1])
		}
		all := e.logs.String()
		for _, secret := range []string{payload[:40], "hunter2", "secret-name", "wait="} {
			if strings.Contains(all, secret) {
				t.Errorf("logs contain %q", secret)
			}
		}
	})
}

// A delayed call waits QUEUED with its due time in /status; a function's
// retry policy is its calls' unless a call gives its own (0: none).
func TestDelayAndRetryFields(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		r := e.do("POST", "/register_function", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "fib"),
			"retries": map[string]any{"max": 4, "backoff": "linear", "base": "2s", "on": []string{"ValueError"}}})
		if r.status != 200 {
			t.Fatalf("register with retries: %d %s", r.status, r.raw)
		}
		fnID := r.str("function_id")
		args := pyfixture.Fixture(t, "args_simple")
		call := func(extra map[string]any) string {
			body := map[string]any{"function_id": fnID, "payload": args}
			for k, v := range extra {
				body[k] = v
			}
			r := e.do("POST", "/execute_function", body)
			if r.status != 200 {
				t.Fatalf("execute %v: %d %s", extra, r.status, r.raw)
			}
			return r.str("task_id")
		}
		inherits, own, none := call(nil), call(map[string]any{"retries": 1}), call(map[string]any{"retries": 0})
		for id, want := range map[string]int{inherits: 4, own: 1, none: 0} {
			tk, err := e.st.GetTask(ctx, id)
			got := 0
			if tk.Retry != nil {
				got = tk.Retry.Max
			}
			if err != nil || got != want {
				t.Fatalf("task %s: retry %+v, %v; want max %d", id, tk.Retry, err, want)
			}
		}
		if tk, _ := e.st.GetTask(ctx, inherits); tk.Retry.Backoff != "linear" || tk.Retry.Base != 2*time.Second {
			t.Fatalf("inherited policy %+v", tk.Retry)
		}

		before := time.Now()
		delayed := call(map[string]any{"delay": "1h"})
		at := call(map[string]any{"run_at": before.Add(2 * time.Hour).Unix()})
		past := call(map[string]any{"run_at": "2001-01-01T00:00:00Z"})
		r = e.do("GET", "/status/"+delayed, nil)
		runAt, err := time.Parse(time.RFC3339, r.str("run_at"))
		if r.status != 200 || r.str("status") != "QUEUED" || err != nil || runAt.Sub(before) < time.Hour-time.Second || runAt.Sub(before) > time.Hour+5*time.Second {
			t.Fatalf("status of a task delayed 1h: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/status/"+at, nil); r.str("run_at") == "" {
			t.Fatalf("status of a task with run_at: %s", r.raw)
		}
		if r := e.do("GET", "/status/"+past, nil); r.str("run_at") != "" {
			t.Fatalf("a run_at in the past delays the task: %s", r.raw)
		}
		if n, _ := e.st.ScheduledCount(ctx); n != 2 {
			t.Fatalf("%d tasks scheduled, want 2", n)
		}
	})
}

// A function's settings are checked against the nodes' limits, stored,
// copied to its tasks and shown by GET /function (secrets by name only).
func TestFunctionSettings(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		src := "def f():\n    return 1\n"
		reg := func(extra map[string]any) response {
			body := map[string]any{"name": "f", "source": src}
			for k, v := range extra {
				body[k] = v
			}
			return e.do("POST", "/register_function", body)
		}
		for _, c := range []struct {
			name   string
			extra  map[string]any
			status int
			detail string
		}{
			{"timeout text", map[string]any{"timeout": "later"}, 422, `field "timeout" must be a positive duration`},
			{"timeout zero", map[string]any{"timeout": 0}, 422, `field "timeout" must be a positive duration`},
			{"timeout over the nodes'", map[string]any{"timeout": "10m"}, 422, "is over the nodes' limit of 30s"},
			{"memory too small", map[string]any{"memory_mb": 8}, 422, `field "memory_mb" must be from 64 to 256`},
			{"memory too large", map[string]any{"memory_mb": 4096}, 422, `field "memory_mb" must be from 64 to 256`},
			{"memory not a number", map[string]any{"memory_mb": "1G"}, 422, `field "memory_mb" must be a whole number`},
			{"env a list", map[string]any{"env": []string{"A=1"}}, 422, `field "env" must be an object of strings`},
			{"env a number value", map[string]any{"env": map[string]any{"A": 1}}, 422, `field "env" must be an object of strings`},
			{"env bad name", map[string]any{"env": map[string]any{"1A": "x"}}, 422, `"1A" is not a variable name`},
			{"env NUL", map[string]any{"env": map[string]any{"A": "x\x00y"}}, 422, "holds a NUL byte"},
			{"env and secrets share a name", map[string]any{"env": map[string]any{"K": "1"}, "secrets": map[string]any{"K": "2"}}, 422, `"K" is in both env and secrets`},
			{"env too large", map[string]any{"env": map[string]any{"BIG": strings.Repeat("x", 40<<10)}}, 413, "at most 128 variables, 32768 bytes"},
		} {
			t.Run(c.name, func(t *testing.T) { expectError(t, reg(c.extra), c.status, c.detail) })
		}

		r := reg(map[string]any{"timeout": "2.5s", "memory_mb": 96, "env": map[string]any{"MODE": "prod"},
			"secrets": map[string]any{"API_KEY": "hunter2", "DB_PASS": "x"}})
		if r.status != 200 {
			t.Fatalf("register with settings: %d %s", r.status, r.raw)
		}
		fnID := r.str("function_id")
		r = e.do("GET", "/function/"+fnID, nil)
		if r.status != 200 || r.body["timeout_seconds"] != 2.5 || r.body["memory_bytes"] != float64(96<<20) ||
			r.str("kind") != "source" || r.str("name") != "f" || strings.Contains(r.raw, "hunter2") ||
			fmt.Sprint(r.body["secrets"]) != "[API_KEY DB_PASS]" || fmt.Sprint(r.body["env"]) != "map[MODE:prod]" {
			t.Fatalf("GET /function: %d %s", r.status, r.raw)
		}
		taskID := e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []any{}}).str("task_id")
		cs, err := e.st.Claim(context.Background(), "w", 1, time.Minute)
		if err != nil || len(cs) != 1 || cs[0].TaskID != taskID {
			t.Fatalf("Claim: %+v %v", cs, err)
		}
		if c := cs[0]; c.Timeout != 2500*time.Millisecond || c.MemoryBytes != 96<<20 ||
			!slices.Equal(c.Env, []string{"API_KEY=hunter2", "DB_PASS=x", "MODE=prod"}) {
			t.Fatalf("the task carries %v %d %q", c.Timeout, c.MemoryBytes, c.Env)
		}
		plain := reg(nil).str("function_id")
		r = e.do("GET", "/function/"+plain, nil)
		if r.body["timeout_seconds"] != nil || r.body["memory_bytes"] != nil || fmt.Sprint(r.body["secrets"]) != "[]" {
			t.Fatalf("GET /function without settings: %s", r.raw)
		}
		expectError(t, e.do("GET", "/function/"+uuid.NewString(), nil), 404, "not found")
		expectError(t, e.do("GET", "/function/nope", nil), 400, "is not a UUID")
		r = e.do("GET", "/runtime", nil)
		if fl, _ := r.body["function_limits"].(map[string]any); fl["max_timeout_seconds"] != 30.0 || fl["min_memory_bytes"] != float64(64<<20) {
			t.Fatalf("GET /runtime function_limits: %s", r.raw)
		}
	})
}
