package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// Every route of the router is in the document, and every operation of the
// document is routed.
func TestOpenAPIMatchesRouter(t *testing.T) {
	h := New(store.New(redistest.StartMini(t), store.Options{}), Options{})
	defer h.Close()
	d := buildOpenAPI(h.opts)
	routed := map[string]bool{}
	err := chi.Walk(h.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range routed {
		if d.ops[r] == nil {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	ids := map[string]bool{}
	for key, o := range d.ops {
		if !routed[key] {
			t.Errorf("the document describes %s, which is not routed", key)
		}
		if o.OperationID == "" || ids[o.OperationID] || o.Summary == "" || len(o.Tags) == 0 || o.Responses["200"] == nil {
			t.Errorf("%s: operationId %q (unique?), summary %q, tags %v, responses %v", key, o.OperationID, o.Summary, o.Tags, o.Responses)
		}
		ids[o.OperationID] = true
		// Path parameters and the path template agree.
		var inPath []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.path, -1) {
			inPath = append(inPath, m[1])
		}
		var declared []string
		for _, p := range o.Parameters {
			if p.In == "path" {
				declared = append(declared, p.Name)
				if !p.Required {
					t.Errorf("%s: path parameter %s must be required", key, p.Name)
				}
			}
		}
		if !slices.Equal(inPath, declared) {
			t.Errorf("%s: path parameters %v, declared %v", key, inPath, declared)
		}
	}
	// Every $ref resolves.
	raw, _ := json.Marshal(d)
	for _, m := range regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(string(raw), -1) {
		if d.Components.Schemas[m[1]] == nil {
			t.Errorf("$ref to unknown schema %s", m[1])
		}
	}
	if !strings.HasPrefix(d.OpenAPI, "3.1.") {
		t.Errorf("openapi %q", d.OpenAPI)
	}
}

// exchange is one request and its answer, as the server saw them.
type exchange struct {
	method, path, pattern string
	reqBody               []byte
	status                int
	contentType           string
	body                  []byte
}

type recorder struct {
	h  *Handler
	mu sync.Mutex
	ex []exchange
}

type teeWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	tw := &teeWriter{ResponseWriter: w}
	rc.h.ServeHTTP(tw, r)
	rctx := chi.NewRouteContext()
	rc.h.mux.Match(rctx, r.Method, r.URL.Path)
	rc.mu.Lock()
	rc.ex = append(rc.ex, exchange{method: r.Method, path: r.URL.Path, pattern: rctx.RoutePattern(), reqBody: body,
		status: tw.status, contentType: tw.Header().Get("Content-Type"), body: tw.buf.Bytes()})
	rc.mu.Unlock()
}

// TestResponsesMatchOpenAPI drives every route through its documented
// answers, then checks each answer against the document: status listed,
// media type listed, body valid against the schema; each accepted request
// body is valid against its schema too; and every documented answer was
// seen.
//
// It runs with everything on: tokens, a rate limit and a queued-task cap,
// so that the 401 and 429 answers are documented and seen too.
func TestResponsesMatchOpenAPI(t *testing.T) {
	const maxQueued = 100
	signer, err := hooks.NewSigner("a-webhook-secret-for-tests")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{MaxBodyBytes: 64 << 10, MaxBatch: 3, MaxWait: time.Second, Auth: testAuth(t), RateLimit: 1000, RateBurst: 1000,
		Webhooks: hooks.Settings{Signer: signer}}
	dopts := opts.withDefaults()
	dopts.maxQueued = maxQueued
	d := buildOpenAPI(dopts)
	seen := map[string]bool{}
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			rdb := b.Start(t)
			st := store.New(rdb, store.Options{MaxQueued: maxQueued})
			hopts := opts
			hopts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			h := New(st, hopts)
			if got, _ := json.Marshal(buildOpenAPI(h.opts)); string(got) != string(must(json.Marshal(d))) {
				t.Fatal("the handler's document is not the one checked against")
			}
			rec := &recorder{h: h}
			srv := httptest.NewServer(rec)
			defer func() { srv.Close(); h.Close() }()
			e := &env{t: t, rdb: rdb, st: st, h: h, srv: srv, token: aliceToken}
			scenario(t, e)
			for _, x := range rec.ex {
				if x.pattern == "" {
					continue // an unrouted request: 404 by design, not an operation
				}
				key := fmt.Sprintf("%s %s %d", x.method, x.pattern, x.status)
				seen[key] = true
				if err := checkExchange(d, x); err != nil {
					t.Errorf("%s %s -> %d: %v\nrequest: %.300s\nanswer: %.500s", x.method, x.path, x.status, err, x.reqBody, x.body)
				}
			}
		})
	}
	var missing []string
	for key, o := range d.ops {
		for code := range o.Responses {
			if !seen[key+" "+code] {
				missing = append(missing, key+" "+code)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented answers the scenario never produced (add them to the scenario, or fix the document):\n%s",
			strings.Join(missing, "\n"))
	}
}

func checkExchange(d *document, x exchange) error {
	o := d.ops[x.method+" "+x.pattern]
	if o == nil {
		return fmt.Errorf("operation not documented")
	}
	resp := o.Responses[fmt.Sprint(x.status)]
	if resp == nil {
		return fmt.Errorf("status %d not documented", x.status)
	}
	mt, _, _ := strings.Cut(x.contentType, ";")
	media, ok := resp.Content[mt]
	if !ok {
		return fmt.Errorf("media type %q not documented (%v)", x.contentType, resp.Content)
	}
	if mt == jsonType {
		var v any
		if err := json.Unmarshal(x.body, &v); err != nil {
			return fmt.Errorf("body is not JSON: %v", err)
		}
		if err := d.validate(media.Schema, v, "body"); err != nil {
			return err
		}
	}
	if x.status == 200 && o.RequestBody != nil {
		var v any
		if err := json.Unmarshal(x.reqBody, &v); err != nil {
			return fmt.Errorf("accepted request body is not JSON: %v", err)
		}
		if err := d.validate(o.RequestBody.Content[jsonType].Schema, v, "request"); err != nil {
			return fmt.Errorf("accepted request body: %w", err)
		}
	}
	return nil
}

// validate checks v (decoded by encoding/json) against s: the subset of
// JSON Schema the document uses.
func (d *document) validate(s *schema, v any, at string) error {
	s, _ = d.resolve(s)
	if s == nil {
		return nil
	}
	if len(s.OneOf) > 0 {
		var errs []string
		n := 0
		for _, alt := range s.OneOf {
			if err := d.validate(alt, v, at); err != nil {
				errs = append(errs, err.Error())
			} else {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: matches %d of %d alternatives (%s)", at, n, len(s.OneOf), strings.Join(errs, "; "))
		}
		return nil
	}
	if len(s.AnyOf) > 0 && !slices.ContainsFunc(s.AnyOf, func(alt *schema) bool { return d.validate(alt, v, at) == nil }) {
		return fmt.Errorf("%s: matches none of the anyOf alternatives", at)
	}
	if s.Not != nil && d.validate(s.Not, v, at) == nil {
		return fmt.Errorf("%s: matches what is forbidden (not)", at)
	}
	var types []string
	switch tp := s.Type.(type) {
	case string:
		types = []string{tp}
	case []string:
		types = tp
	}
	if len(types) > 0 && !slices.ContainsFunc(types, func(tp string) bool { return jsonTypeIs(tp, v) }) {
		return fmt.Errorf("%s: %v is not of type %v", at, v, types)
	}
	if len(s.Enum) > 0 {
		if str, ok := v.(string); !ok || !slices.Contains(s.Enum, str) {
			return fmt.Errorf("%s: %v is not one of %v", at, v, s.Enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				return fmt.Errorf("%s: required field %q missing", at, r)
			}
		}
		for k, val := range x {
			p, ok := s.Properties[k]
			if !ok {
				switch extra := s.AdditionalProperties.(type) {
				case bool:
					if !extra {
						return fmt.Errorf("%s: field %q is not documented", at, k)
					}
				case *schema:
					p = extra
				}
			}
			if err := d.validate(p, val, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if s.MinItems != nil && len(x) < *s.MinItems || s.MaxItems != nil && len(x) > *s.MaxItems {
			return fmt.Errorf("%s: %d items", at, len(x))
		}
		for i, it := range x {
			if err := d.validate(s.Items, it, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func jsonTypeIs(tp string, v any) bool {
	switch tp {
	case "null":
		return v == nil
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// scenario makes every documented answer happen. e sends alice's token.
func scenario(t *testing.T, e *env) {
	getAs := func(token, path string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get := func(path string) { t.Helper(); getAs(e.token, path) }
	for _, p := range []string{"/", "/docs", "/openapi.json", "/metrics", "/healthz", "/runtime", "/dashboard/state", "/dashboard/state?limit=x"} {
		get(p)
	}
	big := strings.Repeat("x", 70<<10)
	unknown := uuid.NewString()

	// Functions.
	src := e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x):\n    return 2 * x"}).str("function_id")
	fn := e.do("POST", "/register_function", map[string]any{"name": "fib", "payload": pyfixture.Fixture(t, "fib"), "isolation": "fresh"}).str("function_id")
	e.do("POST", "/register_function", map[string]any{"name": "f", "payload": "@@@"})
	e.do("POST", "/register_function", map[string]any{"payload": pyfixture.Fixture(t, "fib")})
	e.do("POST", "/register_function", map[string]any{"name": big, "payload": pyfixture.Fixture(t, "fib")})

	// Tasks.
	args := pyfixture.Fixture(t, "args_simple")
	jsonTask := e.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{21}}).str("task_id")
	dillTask := e.do("POST", "/execute_function", map[string]any{"function_id": fn, "payload": args}).str("task_id")
	e.do("POST", "/execute_function", map[string]any{"function_id": "nope", "payload": args})
	e.do("POST", "/execute_function", map[string]any{"function_id": unknown, "payload": args})
	e.do("POST", "/execute_function", map[string]any{"payload": args})
	e.do("POST", "/execute_function", map[string]any{"function_id": fn, "payload": big})
	e.do("POST", "/execute_batch", map[string]any{"function_id": fn, "payloads": []string{args, args}})
	batch := e.do("POST", "/execute_batch", map[string]any{"function_id": src, "calls": []any{map[string]any{"args": []int{1}}, map[string]any{}}})
	e.do("POST", "/execute_batch", map[string]any{"function_id": fn, "payloads": []string{args, "@@@"}})
	e.do("POST", "/execute_batch", map[string]any{"function_id": unknown, "payloads": []string{args}})
	e.do("POST", "/execute_batch", map[string]any{"function_id": fn, "payloads": []string{args, args, args, args}})
	e.do("POST", "/execute_batch", map[string]any{"function_id": fn, "calls": []any{map[string]any{"args": 1}}})

	// Results in every state: the JSON task completes, the dill one fails,
	// the batch's are QUEUED and RUNNING.
	completeNext(t, e.st, jsonTask, store.Outcome{Status: faastype.Completed, Result: "gANLKi4=", ResultJSON: "42"})
	completeNext(t, e.st, dillTask, store.Outcome{Status: faastype.Failed,
		Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom", Traceback: "Traceback ..."}})
	ids, _ := batch.body["task_ids"].([]any)
	running := ids[0].(string)
	// The dill batch's two tasks, then the first of the JSON batch.
	if cs, err := e.st.Claim(t.Context(), "w", 3, time.Minute); err != nil || len(cs) != 3 || cs[2].TaskID != running {
		t.Fatalf("Claim: %v %v", cs, err)
	}
	for _, id := range []string{jsonTask, dillTask, running, ids[1].(string)} {
		get("/status/" + id)
		get("/result/" + id + "?wait=10ms")
	}
	get("/status/nope")
	get("/result/nope")
	get("/result/" + dillTask + "?wait=x")
	get("/status/" + unknown)
	get("/result/" + unknown)
	get("/dashboard/state?limit=2")
	get("/function/" + fn)
	get("/function/" + src)
	get("/function/nope")
	get("/function/" + unknown)
	get("/dashboard/series")
	for _, id := range []string{jsonTask, dillTask, running, ids[1].(string), unknown, "nope"} {
		get("/dashboard/task/" + id)
	}
	get("/tasks")
	get("/tasks?status=FAILED&limit=1")
	get("/tasks?status=done")

	// Cancellation.
	e.do("DELETE", "/task/"+ids[1].(string), nil) // QUEUED
	e.do("DELETE", "/task/"+running, nil)         // RUNNING
	e.do("DELETE", "/task/"+jsonTask, nil)        // 409
	e.do("DELETE", "/task/"+unknown, nil)
	e.do("DELETE", "/task/nope", nil)
	get("/metrics")
	get("/dashboard/state")

	// Schedules.
	sched := e.do("POST", "/schedules", map[string]any{"function_id": src, "every": "1h", "args": []int{1}, "name": "hourly",
		"retries": 2}).str("schedule_id")
	e.do("POST", "/schedules", map[string]any{"function_id": fn, "cron": "*/5 * * * *", "timezone": "Europe/Paris", "payload": args, "missed": "skip"})
	e.do("POST", "/schedules", map[string]any{"function_id": "nope", "every": 60})
	e.do("POST", "/schedules", map[string]any{"function_id": fn, "every": 60, "payload": "@@@"})
	e.do("POST", "/schedules", map[string]any{"function_id": unknown, "every": 60})
	e.do("POST", "/schedules", map[string]any{"function_id": fn, "cron": "* * *"})
	e.do("POST", "/schedules", map[string]any{"function_id": fn, "every": 60, "payload": big})
	get("/schedules")
	get("/schedules/" + sched)
	get("/schedules/nope")
	get("/schedules/" + unknown)
	for _, op := range []string{"pause", "resume"} {
		e.do("POST", "/schedules/"+sched+"/"+op, nil)
		e.do("POST", "/schedules/nope/"+op, nil)
		e.do("POST", "/schedules/"+unknown+"/"+op, nil)
	}
	gone := e.do("POST", "/schedules", map[string]any{"function_id": src, "cron": "@daily", "kwargs": map[string]int{"x": 1}}).str("schedule_id")
	e.do("DELETE", "/schedules/"+gone, nil)
	e.do("DELETE", "/schedules/nope", nil)
	e.do("DELETE", "/schedules/"+unknown, nil)
	// Completion webhooks: a function's default, a call's own, a refused
	// URL, the callback object of a task waiting and of one final, and the
	// signing key (404 with webhooks off).
	hooked := e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x):\n    return 2 * x",
		"callback_url": "https://example.com/hooks/default"}).str("function_id")
	e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x):\n    return 2 * x",
		"callback_url": "ftp://example.com/"})
	waiting := e.do("POST", "/execute_function", map[string]any{"function_id": hooked, "args": []int{1}}).str("task_id")
	final := e.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{1},
		"callback_url": "https://example.com/hooks/own"}).str("task_id")
	e.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{1}, "callback_url": "http://169.254.169.254/"})
	e.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{1}, "callback_url": 5})
	e.do("POST", "/execute_batch", map[string]any{"function_id": hooked, "calls": []any{map[string]any{}}, "callback_url": nil})
	e.do("DELETE", "/task/"+final, nil)
	get("/result/" + waiting)
	get("/result/" + final)
	get("/webhook_secret")
	signer := e.h.opts.Webhooks.Signer
	e.h.opts.Webhooks.Signer = nil
	get("/webhook_secret")
	e.h.opts.Webhooks.Signer = signer

	// Every route but the public ones: 401 without a token, 429 for a
	// tenant (bob) over its rate.
	bob := e.h.limiter.bucket("bob")
	bob.SetLimit(0.001) // one token in 1000 s
	bob.AllowN(time.Now(), bob.Burst())
	for _, token := range []string{"", bobToken} {
		for _, rt := range routes(t, e.h) {
			if publicRoutes[rt[0]+" "+rt[1]] {
				continue
			}
			if rt[0] == "GET" {
				getAs(token, rt[1])
			} else {
				e.as(token).do(rt[0], rt[1], map[string]any{})
			}
		}
	}

	// Redis goes away: every route that needs it says so. (The result of a
	// task this API created and saw finish is still answered, from the done
	// message it kept.)
	if err := e.rdb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/status/" + jsonTask, "/function/" + fn, "/result/" + unknown, "/runtime", "/healthz", "/metrics",
		"/dashboard/state", "/tasks", "/dashboard/series", "/dashboard/task/" + dillTask} {
		get(p)
	}
	e.do("POST", "/register_function", map[string]any{"name": "f", "payload": pyfixture.Fixture(t, "fib")})
	e.do("POST", "/execute_function", map[string]any{"function_id": fn, "payload": args})
	e.do("POST", "/execute_batch", map[string]any{"function_id": fn, "payloads": []string{args}})
	e.do("DELETE", "/task/"+jsonTask, nil)
	e.do("POST", "/schedules", map[string]any{"function_id": src, "every": 60})
	get("/schedules")
	get("/schedules/" + sched)
	e.do("POST", "/schedules/"+sched+"/pause", nil)
	e.do("POST", "/schedules/"+sched+"/resume", nil)
	e.do("DELETE", "/schedules/"+sched, nil)
}

// The checker TestResponsesMatchOpenAPI relies on finds what it must.
func TestSchemaValidator(t *testing.T) {
	d := buildOpenAPI(Options{}.withDefaults())
	cases := []struct {
		schema string
		body   string
		ok     bool
	}{
		{"StatusResponse", `{"task_id": "x", "status": "QUEUED"}`, true},
		{"StatusResponse", `{"task_id": "x", "status": "DONE"}`, false},           // not in the enum
		{"StatusResponse", `{"task_id": "x"}`, false},                             // required field missing
		{"StatusResponse", `{"task_id": "x", "status": "QUEUED", "x": 1}`, false}, // undocumented field
		{"StatusResponse", `{"task_id": 1, "status": "QUEUED"}`, false},           // wrong type
		{"ResultResponse", `{"task_id": "x", "status": "QUEUED", "result": null, "stdout": "", "stderr": "", "timings": null, "attempts": 0, "errors": []}`, true},
		{"ResultResponse", `{"task_id": "x", "status": "QUEUED", "result": null, "stdout": "", "stderr": "", "timings": null, "attempts": 0.5}`, false},
		{"ExecuteRequest", `{"function_id": "x", "payload": "p"}`, true},
		{"ExecuteRequest", `{"function_id": "x", "kwargs": {}}`, true},
		{"ExecuteRequest", `{"function_id": "x"}`, false},                             // neither form
		{"ExecuteRequest", `{"function_id": "x", "payload": "p", "args": []}`, false}, // both
		{"BatchRequest", `{"function_id": "x", "calls": [{"args": [1]}]}`, true},
		{"BatchRequest", `{"function_id": "x", "calls": []}`, false},
		{"BatchRequest", `{"function_id": "x", "calls": [{"arg": [1]}]}`, false},
		{"RegisterRequest", `{"name": "f", "source": "def f(): pass"}`, true},
		{"RegisterRequest", `{"name": "f", "source": "s", "payload": "p"}`, false},
		{"ExecuteRequest", `{"function_id": "x", "args": [1], "delay": "30s", "retries": {"max": 3, "on": ["ValueError"]}}`, true},
		{"ExecuteRequest", `{"function_id": "x", "payload": "p", "run_at": "2026-12-07T18:00:00Z", "retries": 2}`, true},
		{"ExecuteRequest", `{"function_id": "x", "args": [1], "retries": {"tries": 3}}`, false},
		{"RegisterRequest", `{"name": "f", "source": "def f(): pass", "retries": null}`, true},
		{"Error", `{"detail": "x"}`, true},
		{"Error", `{"message": "x"}`, false},
	}
	for _, c := range cases {
		var v any
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		err := d.validate(d.Components.Schemas[c.schema], v, "body")
		if (err == nil) != c.ok {
			t.Errorf("%s %s: %v, want ok=%v", c.schema, c.body, err, c.ok)
		}
	}
}

func TestInlineCode(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"use `x` here":     "use <code>x</code> here",
		"`a` and `b<c>`":   "<code>a</code> and <code>b&lt;c&gt;</code>",
		"one ` unpaired":   "one ` unpaired",
		"<b>`&`</b>":       "&lt;b&gt;<code>&amp;</code>&lt;/b&gt;",
		"`x` then ` alone": "<code>x</code> then ` alone",
	} {
		if got := string(inlineCode(in)); got != want {
			t.Errorf("inlineCode(%q) = %q, want %q", in, got, want)
		}
	}
}
