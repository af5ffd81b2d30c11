package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

const (
	aliceToken = "alice-secret-token-0001"
	aliceSpare = "alice-second-token-0002" // a tenant may have two tokens
	bobToken   = "bob-secret-token-000003"
)

func testAuth(t testing.TB) *Auth {
	t.Helper()
	a, err := NewAuth([]Token{{Tenant: "alice", Secret: aliceToken}, {Tenant: "bob", Secret: bobToken},
		{Tenant: "alice", Secret: aliceSpare}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// raw sends a request and returns the answer as is (any content type).
func (e *env) raw(method, path, body string, header map[string]string) (int, http.Header, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// routes lists every route of the handler with a concrete path.
func routes(t *testing.T, h *Handler) [][2]string {
	var out [][2]string
	err := chi.Walk(h.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, [2]string{method, strings.ReplaceAll(route, "{task_id}", uuid.NewString())})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTokensRequiredOnEveryRouteButThePublicOnes(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{Auth: testAuth(t)})
	fn := e.as(aliceToken).register(pyfixture.Fixture(t, "fib"))
	bad := []struct {
		name, header, wantAuth string
	}{
		{"missing", "", `Bearer realm="wasmfaas"`},
		{"basic", "Basic YWxpY2U6eA==", `error="invalid_request"`},
		{"no token", "Bearer", `error="invalid_request"`},
		{"two words", "Bearer " + aliceToken + " x", `error="invalid_request"`},
		{"wrong", "Bearer " + aliceToken + "x", `error="invalid_token"`},
		{"prefix", "Bearer " + aliceToken[:len(aliceToken)-1], `error="invalid_token"`},
		{"raw token", aliceToken, `error="invalid_request"`},
	}
	all := routes(t, e.h)
	// Unknown routes and wrong methods need a token too.
	all = append(all, [2]string{"GET", "/nope"}, [2]string{"DELETE", "/status/" + uuid.NewString()},
		[2]string{"POST", "/healthz/"}, [2]string{"GET", "/%68ealthz"})
	bodies := map[string]string{
		"/register_function": `{"name": "f", "source": "def f(): return 1"}`,
		"/execute_function":  fmt.Sprintf(`{"function_id": %q, "args": []}`, fn),
		"/execute_batch":     fmt.Sprintf(`{"function_id": %q, "calls": [{}]}`, fn),
	}
	public := 0
	for _, rt := range all {
		method, path := rt[0], rt[1]
		if publicRoutes[method+" "+path] {
			public++
			for _, c := range bad {
				status, _, _ := e.raw(method, path, "", map[string]string{"Authorization": c.header})
				if status != http.StatusOK {
					t.Errorf("public %s %s with %s header: %d", method, path, c.name, status)
				}
			}
			continue
		}
		for _, c := range bad {
			h := map[string]string{}
			if c.header != "" {
				h["Authorization"] = c.header
			}
			status, hdr, body := e.raw(method, path, bodies[path], h)
			if status != http.StatusUnauthorized || hdr.Get("Content-Type") != "application/json" ||
				!strings.Contains(body, `"detail"`) || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer realm=") ||
				!strings.Contains(hdr.Get("WWW-Authenticate"), c.wantAuth) {
				t.Errorf("%s %s, %s token: %d %v %s", method, path, c.name, status, hdr, body)
			}
		}
		// A valid token (either of alice's) gets past the check.
		for _, tok := range []string{aliceToken, aliceSpare, bobToken} {
			status, _, body := e.raw(method, path, bodies[path], map[string]string{"Authorization": "bearer  " + tok})
			if status == http.StatusUnauthorized {
				t.Errorf("%s %s with a valid token: %d %s", method, path, status, body)
			}
		}
	}
	if public != len(publicRoutes) {
		t.Errorf("saw %d public routes, want %d", public, len(publicRoutes))
	}
	// Two Authorization headers are refused, whatever they say.
	req, _ := http.NewRequest("GET", e.srv.URL+"/runtime", nil)
	req.Header.Add("Authorization", "Bearer "+aliceToken)
	req.Header.Add("Authorization", "Bearer "+aliceToken)
	if r := e.send(req); r.status != 401 {
		t.Errorf("two Authorization headers: %d", r.status)
	}
}

func TestOpenWithoutTokens(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{})
	// A course client sends no header; a stray one is ignored.
	fn := e.register(pyfixture.Fixture(t, "fib"))
	tid := e.as("whatever-token-it-is-ignored").execute(fn, pyfixture.Fixture(t, "args_simple"))
	if r := e.do("GET", "/status/"+tid, nil); r.status != 200 {
		t.Fatalf("status: %d %s", r.status, r.raw)
	}
	if strings.Contains(e.logs.String(), `"tenant"`) {
		t.Errorf("open mode logged a tenant")
	}
}

func TestTokensAreNeverLogged(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{Auth: testAuth(t), RateLimit: 1000})
	alice := e.as(aliceToken)
	fn := alice.register(pyfixture.Fixture(t, "fib"))
	tid := alice.execute(fn, pyfixture.Fixture(t, "args_simple"))
	alice.do("GET", "/result/"+tid+"?wait=10ms", nil)
	e.as(bobToken).do("GET", "/status/"+tid, nil)
	wrong := "not-a-valid-token-but-secret-looking"
	e.as(wrong).do("GET", "/runtime", nil)
	e.raw("GET", "/metrics", "", map[string]string{"Authorization": "Basic " + wrong})
	e.as(aliceToken+"!").do("DELETE", "/task/"+tid, nil)
	logs := e.logs.String()
	for _, secret := range []string{aliceToken, bobToken, wrong, "secret-token"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"tenant":"alice"`, `"tenant":"bob"`, `"status":401`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}

func TestTenantsSeeOnlyTheirOwn(t *testing.T) {
	eachBackend(t, Options{Auth: testAuth(t)}, func(t *testing.T, e *env) {
		alice, bob := e.as(aliceToken), e.as(bobToken)
		fn := alice.register(pyfixture.Fixture(t, "fib"))
		src := alice.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x):\n    return 2 * x"}).str("function_id")
		args := pyfixture.Fixture(t, "args_simple")
		// One task RUNNING, one COMPLETED, one QUEUED.
		running := alice.execute(fn, args)
		done := alice.execute(fn, args)
		queued := alice.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{1}}).str("task_id")
		cs, err := e.st.Claim(context.Background(), "w", 1, time.Minute)
		if err != nil || len(cs) != 1 || cs[0].TaskID != running {
			t.Fatalf("Claim = %v, %v", cs, err)
		}
		completeNext(t, e.st, done, store.Outcome{Status: faastype.Completed, Result: "gAQu"})
		task, err := e.st.GetTask(context.Background(), queued)
		if err != nil || task.Owner != "alice" {
			t.Fatalf("task owner %q, %v", task.Owner, err)
		}
		if f, _ := e.st.GetFunction(context.Background(), fn); f.Owner != "alice" {
			t.Fatalf("function owner %q", f.Owner)
		}

		// Bob gets exactly what an unknown id gets, on every route that
		// takes an id, whatever the task's state.
		unknownFn, unknownTask := uuid.NewString(), uuid.NewString()
		sameAsUnknown := func(what string, got, unknown response, id, unknownID string) {
			t.Helper()
			if got.status != http.StatusNotFound || got.status != unknown.status ||
				strings.ReplaceAll(got.raw, id, unknownID) != unknown.raw {
				t.Errorf("%s: bob got %d %s; an unknown id gets %d %s", what, got.status, got.raw, unknown.status, unknown.raw)
			}
		}
		for _, f := range []string{fn, src} {
			sameAsUnknown("execute_function", bob.do("POST", "/execute_function", map[string]any{"function_id": f, "payload": args}),
				bob.do("POST", "/execute_function", map[string]any{"function_id": unknownFn, "payload": args}), f, unknownFn)
			sameAsUnknown("execute_function json", bob.do("POST", "/execute_function", map[string]any{"function_id": f, "args": []int{1}}),
				bob.do("POST", "/execute_function", map[string]any{"function_id": unknownFn, "args": []int{1}}), f, unknownFn)
			sameAsUnknown("execute_batch", bob.do("POST", "/execute_batch", map[string]any{"function_id": f, "payloads": []string{args}}),
				bob.do("POST", "/execute_batch", map[string]any{"function_id": unknownFn, "payloads": []string{args}}), f, unknownFn)
			sameAsUnknown("execute_batch json", bob.do("POST", "/execute_batch", map[string]any{"function_id": f, "calls": []any{map[string]any{}}}),
				bob.do("POST", "/execute_batch", map[string]any{"function_id": unknownFn, "calls": []any{map[string]any{}}}), f, unknownFn)
		}
		for _, id := range []string{queued, running, done} {
			for _, path := range []string{"/status/", "/result/", "/result/%s?wait=50ms"} {
				p := func(id string) string {
					if strings.Contains(path, "%s") {
						return fmt.Sprintf(path, id)
					}
					return path + id
				}
				sameAsUnknown("GET "+path, bob.do("GET", p(id), nil), bob.do("GET", p(unknownTask), nil), id, unknownTask)
			}
			sameAsUnknown("DELETE /task", bob.do("DELETE", "/task/"+id, nil), bob.do("DELETE", "/task/"+unknownTask, nil), id, unknownTask)
		}
		// Bob's DELETEs changed nothing.
		for id, want := range map[string]faastype.Status{running: faastype.Running, done: faastype.Completed, queued: faastype.Queued} {
			if r := alice.do("GET", "/status/"+id, nil); r.status != 200 || r.str("status") != string(want) {
				t.Fatalf("alice's task %s after bob's cancel: %d %s, want %s", id, r.status, r.raw, want)
			}
		}
		// Nor does an open-mode client on the same Redis see them.
		open := New(e.st, Options{Logger: e.h.log})
		defer open.Close()
		for _, id := range []string{queued, done} {
			req, _ := http.NewRequest("GET", "/status/"+id, nil)
			rec := &statusRecorder{header: http.Header{}}
			open.ServeHTTP(rec, req)
			if rec.status != 404 {
				t.Fatalf("open mode sees alice's task: %d", rec.status)
			}
		}

		// The dashboard lists each tenant's own tasks; the counts are the cluster's.
		as, bs := alice.do("GET", "/dashboard/state", nil), bob.do("GET", "/dashboard/state", nil)
		if as.status != 200 || bs.status != 200 {
			t.Fatalf("dashboard: %d %d", as.status, bs.status)
		}
		recent := func(r response) []string {
			var ids []string
			items, _ := r.body["recent"].([]any)
			for _, it := range items {
				ids = append(ids, it.(map[string]any)["task_id"].(string))
			}
			return ids
		}
		if got := recent(as); !slices.Equal(got, []string{queued, done, running}) {
			t.Fatalf("alice's recent tasks %v", got)
		}
		if got := recent(bs); len(got) != 0 {
			t.Fatalf("bob sees tasks %v", got)
		}
		if as.body["tasks"].(map[string]any)["submitted"] != bs.body["tasks"].(map[string]any)["submitted"] {
			t.Fatalf("the cluster-wide counts differ between tenants")
		}
		for r, want := range map[*response]string{&as: `{"name":"alice","queue_depth":1,"running":1}`, &bs: `{"name":"bob","queue_depth":0,"running":0}`} {
			if got, _ := json.Marshal(r.body["tenant"]); string(got) != want {
				t.Fatalf("tenant %s, want %s", got, want)
			}
		}
		// Alice can cancel her own.
		if r := alice.do("DELETE", "/task/"+queued, nil); r.status != 200 {
			t.Fatalf("alice cancels her task: %d %s", r.status, r.raw)
		}
	})
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.status = code }

func TestRateLimit(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{Auth: testAuth(t), RateLimit: 0.5, RateBurst: 3})
	alice, bob := e.as(aliceToken), e.as(bobToken)
	for i := range 3 {
		if r := alice.do("GET", "/runtime", nil); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
	}
	// Every route, the tenant's other token too.
	for _, r := range []response{alice.do("GET", "/runtime", nil), e.as(aliceSpare).do("POST", "/register_function", map[string]any{}),
		alice.do("GET", "/status/"+uuid.NewString(), nil)} {
		expectError(t, r, http.StatusTooManyRequests, "too many requests")
		if r.header.Get("Retry-After") != "2" {
			t.Fatalf("Retry-After %q, want 2 (one request per 2 s)", r.header.Get("Retry-After"))
		}
	}
	// Bob has his own bucket; health and the pages are not counted.
	if r := bob.do("GET", "/runtime", nil); r.status != 200 {
		t.Fatalf("bob: %d", r.status)
	}
	for range 5 {
		if r := alice.do("GET", "/healthz", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
	}
	// Without tokens, the one default tenant is limited the same way.
	o := newEnv(t, redistest.StartMini(t), Options{RateLimit: 1, RateBurst: 1})
	o.do("GET", "/runtime", nil)
	expectError(t, o.do("GET", "/runtime", nil), http.StatusTooManyRequests, "too many requests")
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(10, 2)
	now := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow("a", now); ok != want {
			t.Fatalf("request %d: %v", i, ok)
		}
	}
	if ok, wait := l.allow("a", now); ok || wait != 100*time.Millisecond {
		t.Fatalf("empty bucket: %v %v", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("b shares a's bucket")
	}
	if ok, _ := l.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Fatal("no refill after 100 ms at 10/s")
	}
	// Refills stop at the burst.
	later := now.Add(time.Hour)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow("a", later); ok != want {
			t.Fatalf("after an hour, request %d: %v", i, ok)
		}
	}
	if newLimiter(0, 5) != nil {
		t.Fatal("rate 0 makes a limiter")
	}
	if l := newLimiter(2.5, 0); l.burst != 5 {
		t.Fatalf("default burst %d", l.burst)
	}
}

func TestQueuedTaskQuota(t *testing.T) {
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnvWith(t, b.Start(t), store.Options{MaxQueued: 3}, Options{Auth: testAuth(t)})
			alice, bob := e.as(aliceToken), e.as(bobToken)
			fn := alice.register(pyfixture.Fixture(t, "fib"))
			args := pyfixture.Fixture(t, "args_simple")
			alice.execute(fn, args)
			alice.execute(fn, args)
			r := alice.do("POST", "/execute_batch", map[string]any{"function_id": fn, "payloads": []string{args, args}})
			expectError(t, r, http.StatusTooManyRequests, "too many queued tasks: 2 are queued and 2 more would pass the limit of 3")
			if r.header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
			if st, _ := e.st.Stats(context.Background()); st.Submitted != 2 {
				t.Fatalf("a refused batch created tasks: %+v", st)
			}
			alice.execute(fn, args)
			expectError(t, alice.do("POST", "/execute_function", map[string]any{"function_id": fn, "payload": args}),
				http.StatusTooManyRequests, "limit of 3")
			// Bob's queue is his own.
			bfn := bob.register(pyfixture.Fixture(t, "fib"))
			if r := bob.do("POST", "/execute_batch", map[string]any{"function_id": bfn, "payloads": []string{args, args, args}}); r.status != 200 {
				t.Fatalf("bob's batch: %d %s", r.status, r.raw)
			}
			// Tasks that start make room.
			if _, err := e.st.Claim(context.Background(), "w", 2, time.Minute); err != nil {
				t.Fatal(err)
			}
			alice.execute(fn, args)
		})
	}
}

func TestParseTokens(t *testing.T) {
	toks, err := ParseTokenFile("# tenants\n\n alice : "+aliceToken+" \nbob:"+bobToken+"\n  # more\nalice:"+aliceSpare+"\n", "f")
	if err != nil || len(toks) != 3 || toks[0].Tenant != "alice" || toks[0].Secret != aliceToken || toks[1].Where != "f, line 4" {
		t.Fatalf("ParseTokenFile = %+v, %v", toks, err)
	}
	a, err := NewAuth(toks)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Tenants(), []string{"alice", "bob"}) {
		t.Fatalf("Tenants = %v", a.Tenants())
	}
	for secret, want := range map[string]string{aliceToken: "alice", aliceSpare: "alice", bobToken: "bob", "": "", "x": "", aliceToken + " ": ""} {
		if got, ok := a.lookup(secret); got != want || ok != (want != "") {
			t.Errorf("lookup(%q) = %q, %v", secret, got, ok)
		}
	}
	list, err := ParseTokenList(" alice:"+aliceToken+", ,bob:"+bobToken, "FAAS_TOKENS")
	if err != nil || len(list) != 2 || list[1].Where != "FAAS_TOKENS, item 3" {
		t.Fatalf("ParseTokenList = %+v, %v", list, err)
	}
	// A token may contain a colon; the tenant may not.
	if l, err := ParseTokenList("a:b:"+aliceToken, "x"); err != nil || l[0].Secret != "b:"+aliceToken {
		t.Fatalf("colon in token: %+v %v", l, err)
	}
	for _, c := range []struct {
		tokens []Token
		want   string
	}{
		{nil, "no tokens"},
		{[]Token{{Tenant: "alice", Secret: "short-secret", Where: "f, line 2"}}, `f, line 2: the token of tenant "alice" is too weak: 12 characters, at least 16`},
		{[]Token{{Tenant: "a b", Secret: aliceToken}}, "tenant name"},
		{[]Token{{Tenant: "", Secret: aliceToken}}, "tenant name"},
		{[]Token{{Tenant: "a", Secret: "0123456789 abcdef"}}, "not visible ASCII"},
		{[]Token{{Tenant: "a", Secret: aliceToken, Where: "f, line 1"}, {Tenant: "b", Secret: aliceToken, Where: "f, line 2"}}, "the same token is given twice"},
	} {
		_, err := NewAuth(c.tokens)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewAuth(%v): %v, want %q", c.tokens, err, c.want)
			continue
		}
		for _, tok := range c.tokens {
			if len(tok.Secret) > 3 && strings.Contains(err.Error(), tok.Secret) {
				t.Errorf("the error shows the token: %v", err)
			}
		}
	}
	if _, err := ParseTokenFile("alice "+aliceToken, "f"); err == nil || !strings.Contains(err.Error(), "f, line 1: expected tenant:token") ||
		strings.Contains(err.Error(), aliceToken) {
		t.Errorf("a line without a colon: %v", err)
	}
}

// The document describes what the options turn on, and only that.
func TestOpenAPIDescribesTheQuotas(t *testing.T) {
	open := buildOpenAPI(Options{}.withDefaults())
	if open.Security != nil || open.Components.SecuritySchemes != nil {
		t.Fatal("open mode documents a security scheme")
	}
	for key, o := range open.ops {
		if o.Responses["401"] != nil || o.Responses["429"] != nil || o.Security != nil {
			t.Errorf("open mode documents 401/429/security on %s", key)
		}
	}
	opts := Options{Auth: testAuth(t), RateLimit: 5}.withDefaults()
	opts.maxQueued = 7
	d := buildOpenAPI(opts)
	if d.Components.SecuritySchemes[bearerScheme].Scheme != "bearer" || len(d.Security) != 1 {
		t.Fatalf("security %+v %+v", d.Components.SecuritySchemes, d.Security)
	}
	for key, o := range d.ops {
		if publicRoutes[key] {
			if o.Security == nil || len(*o.Security) != 0 || o.Responses["401"] != nil {
				t.Errorf("public %s: security %v, 401 %v", key, o.Security, o.Responses["401"])
			}
			continue
		}
		if o.Responses["401"] == nil || o.Responses["429"] == nil || o.Responses["429"].Headers["Retry-After"].Schema == nil {
			t.Errorf("%s lacks 401 or 429", key)
		}
	}
	if !strings.Contains(d.ops["POST /execute_batch"].Responses["429"].Description, "limit of 7") {
		t.Errorf("execute_batch 429: %q", d.ops["POST /execute_batch"].Responses["429"].Description)
	}
	if !strings.Contains(d.Info.Description, "Authorization: Bearer") {
		t.Errorf("the description does not say how to authenticate")
	}
}
