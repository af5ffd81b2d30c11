package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// captured runs fn with os.Stdout and os.Stderr sent to pipes, and returns
// its exit code and what it wrote on each.
func captured(t *testing.T, fn func() int) (code int, stdout, stderr string) {
	t.Helper()
	read := func(target **os.File) (restore func() string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *target
		*target = w
		out := make(chan string)
		go func() {
			b, _ := io.ReadAll(r)
			out <- string(b)
		}()
		return func() string {
			w.Close()
			*target = old
			return <-out
		}
	}
	endOut, endErr := read(&os.Stdout), read(&os.Stderr)
	code = fn()
	return code, endOut(), endErr()
}

func TestParseCommandLine(t *testing.T) {
	t.Setenv("FAAS_URL", "http://from-env:1")
	t.Setenv("FAAS_NAME", "dispatcher-name") // a dispatcher's, not the function's
	cases := []struct {
		args      []string
		pos       []string
		url, name string
		wait      time.Duration
	}{
		{args: nil, url: "http://from-env:1"},
		{args: []string{"id"}, pos: []string{"id"}, url: "http://from-env:1"},
		{args: []string{"id", "--wait", "3s", "--name", "n"}, pos: []string{"id"}, url: "http://from-env:1", name: "n", wait: 3 * time.Second},
		{args: []string{"--url", "http://flag:2", "a", "-wait=1s", "b"}, pos: []string{"a", "b"}, url: "http://flag:2", wait: time.Second},
		{args: []string{"a", "--", "--wait", "-x"}, pos: []string{"a", "--wait", "-x"}, url: "http://from-env:1"},
		{args: []string{"--", "-a"}, pos: []string{"-a"}, url: "http://from-env:1"},
	}
	for _, c := range cases {
		fs := newFlagSet("t", "", "")
		cf := addClientFlags(fs)
		name := fs.String("name", "", "")
		wait := fs.Duration("wait", 0, "")
		pos, err := parseCommandLine(fs.FlagSet, c.args, true, clientEnvFlags)
		if err != nil || !slices.Equal(pos, c.pos) || cf.url != c.url || *name != c.name || *wait != c.wait {
			t.Errorf("%q: pos %q url %q name %q wait %s, err %v; want %q %q %q %s", c.args, pos, cf.url, *name, *wait, err,
				c.pos, c.url, c.name, c.wait)
		}
		// Only the variables of the user commands are shown.
		if u := fs.Lookup("name").Usage; strings.Contains(u, "env") {
			t.Errorf("--name usage %q names a variable", u)
		}
		if u := fs.Lookup("url").Usage; !strings.Contains(u, "(env FAAS_URL)") {
			t.Errorf("--url usage %q", u)
		}
	}
	// The server commands are as they were: every flag from its variable,
	// parsing stops at the first argument.
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	name := fs.String("name", "", "")
	if err := parseFlags(fs, []string{"x", "--name", "y"}); err != nil || *name != "dispatcher-name" || fs.NArg() != 3 {
		t.Errorf("parseFlags: name %q, args %q, %v", *name, fs.Args(), err)
	}
}

// TestUserCommandArgumentErrors: bad arguments are refused before anything
// is sent, with the reason and a non-zero exit.
func TestUserCommandArgumentErrors(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"detail": "no request was expected"}`, http.StatusTeapot)
	}))
	defer srv.Close()
	t.Setenv("FAAS_URL", srv.URL)
	t.Setenv("FAAS_TOKEN", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "fns.py")
	if err := os.WriteFile(file, []byte("def area(r):\n    return r * r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const id = "0d6f1c4e-2b7a-4c39-9d51-8a1f3e2b7c60"
	for _, c := range []struct {
		run  func([]string) int
		args []string
		code int
		want string // in stderr
	}{
		{cmdFn, nil, 2, "Usage: faas fn register FILE.py:NAME"},
		{cmdFn, []string{"deploy"}, 2, "Usage: faas fn register"},
		{cmdFnRegister, nil, 2, "want 1 argument(s), got 0"},
		{cmdFnRegister, []string{file + ":area", "more"}, 2, "want 1 argument(s), got 2"},
		{cmdFnRegister, []string{file}, 1, "want FILE.py:NAME"},
		{cmdFnRegister, []string{file + ":"}, 1, "want FILE.py:NAME"},
		{cmdFnRegister, []string{":area"}, 1, "want FILE.py:NAME"},
		{cmdFnRegister, []string{filepath.Join(dir, "nope.py") + ":area"}, 1, "no such file or directory"},
		{cmdFnRegister, []string{file + ":volume"}, 1, "defines no volume"},
		{cmdFnRegister, []string{file + ":area", "--isolation"}, 2, "flag needs an argument: -isolation"},
		{cmdFnRegister, []string{file + ":area", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{cmdCall, nil, 2, "want 1 argument(s), got 0"},
		{cmdCall, []string{id, id}, 2, "want 1 argument(s), got 2"},
		{cmdCall, []string{id, "--args", "[1,"}, 1, "--args is not JSON"},
		{cmdCall, []string{id, "--args", `{"a": 1}`}, 1, "--args must be a JSON array"},
		{cmdCall, []string{id, "--args", "1"}, 1, "--args must be a JSON array"},
		{cmdCall, []string{id, "--kwargs", "[1]"}, 1, "--kwargs must be a JSON object"},
		{cmdCall, []string{id, "--kwargs", "{"}, 1, "--kwargs is not JSON"},
		{cmdCall, []string{id, "--wait", "-1s"}, 1, "--wait must not be negative"},
		{cmdCall, []string{id, "--delay", "1s", "--run-at", "5"}, 1, "give either --delay or --run-at"},
		{cmdCall, []string{id, "--retries", "{max: 3}"}, 1, "--retries must be a number or a JSON object"},
		{cmdFnRegister, []string{file + ":area", "--retries", "three"}, 1, "--retries must be a number or a JSON object"},
		{cmdFnRegister, []string{file + ":area", "--env", "=x"}, 2, `"=x" has no name before the '='`},
		{cmdFnRegister, []string{file + ":area", "--env", "A=1", "--env", "A=2"}, 2, "A given twice"},
		{cmdFnRegister, []string{file + ":area", "--secret", "FAAS_TEST_UNSET_VAR"}, 2, "no variable FAAS_TEST_UNSET_VAR is set here"},
		{cmdCall, []string{id, "--wait", "30"}, 2, `invalid value "30" for flag -wait`},
		{cmdCall, []string{id, "--url", "ftp://host"}, 2, "--url (FAAS_URL) must be an http:// or https:// base URL"},
		{cmdCall, []string{id, "--url", "127.0.0.1:8000"}, 2, "--url (FAAS_URL) must be"},
		{cmdResult, nil, 2, "want 1 argument(s), got 0"},
		{cmdResult, []string{id, "--wait", "soon"}, 2, `invalid value "soon" for flag -wait`},
		{cmdResult, []string{id, "--wait", "-5s"}, 1, "--wait must not be negative"},
		{cmdTasks, []string{"extra"}, 2, "want 0 argument(s), got 1"},
		{cmdTasks, []string{"--limit", "many"}, 2, `invalid value "many" for flag -limit`},
	} {
		code, stdout, stderr := captured(t, func() int { return c.run(c.args) })
		if code != c.code || !strings.Contains(stderr, c.want) || stdout != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit %d and %q", c.args, code, stderr, stdout, c.code, c.want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent for bad arguments", n)
	}
	t.Setenv("FAAS_URL", "localhost:8000")
	if code, _, stderr := captured(t, func() int { return cmdTasks(nil) }); code != 2 || !strings.Contains(stderr, `not "localhost:8000"`) {
		t.Errorf("a bad FAAS_URL: %d %q", code, stderr)
	}
}

func TestCheckDefines(t *testing.T) {
	for _, c := range []struct {
		src, name string
		ok        bool
	}{
		{"def f(x):\n    return x\n", "f", true},
		{"async def f():\n    pass\n", "f", true},
		{"@decorate\ndef  f (x): pass", "f", true},
		{"class f:\n    pass\n", "f", true},
		{"f = lambda x: x\n", "f", true},
		{"f: Callable = g\n", "f", true},
		{"a, f = 1, len\n", "f", true},
		{"from math import sqrt as f\n", "f", true},
		{"from math import sqrt\n", "sqrt", true},
		{"from os.path import (\n    join,\n    f,\n)\n", "f", true},
		{"import json\n", "json", true},
		{"try:\n    from fast import f\nexcept ImportError:\n    def f(): pass\n", "f", true},
		{"if True:\n    def f(): pass\n", "f", true},
		{"for f in [len]:\n    pass\n", "f", true},
		{"with open('x') as f:\n    pass\n", "f", true},
		{"(f := len)\n", "f", true},
		{"not an identifier: left to the server", "1f", true},
		{"", "f", false},
		{"def g():\n    return f()\n", "f", false},
		{"def ff(): pass\ndef f_(): pass\n", "f", false},
		{"x = f\n", "f", false},
		{"if f == 1:\n    pass\n", "f", false},
		{"print(f)\n", "f", false},
		{"g(f=1)\n", "f", false},
		{"[a, f] = 1, 2\n", "f", true},
		{"def area(r): pass\n", "are", false},
		{"import fx\n", "f", false},
	} {
		err := checkDefines(c.src, c.name)
		if (err == nil) != c.ok {
			t.Errorf("checkDefines(%q, %q) = %v, want ok %v", c.src, c.name, err, c.ok)
		}
	}
}

func TestResultText(t *testing.T) {
	pickled := func(b []byte) *string { s := base64Std(b); return &s }
	none := pickled([]byte("\x80\x04N."))
	set := pickled([]byte("\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90."))
	for _, c := range []struct {
		r    taskResult
		text string
		ok   bool
	}{
		{taskResult{Status: "COMPLETED", Result: pickled([]byte("x")), ResultJSON: json.RawMessage(`{"a":1}`)}, `{"a":1}`, true},
		{taskResult{Status: "COMPLETED", Result: pickled([]byte("x")), ResultJSON: json.RawMessage(`0`)}, `0`, true},
		{taskResult{Status: "COMPLETED", Result: none, ResultJSON: json.RawMessage("null")}, "null", true},
		{taskResult{Status: "COMPLETED", Result: set, ResultJSON: json.RawMessage("null")}, "a dill pickle (the value has no JSON form) of 20 bytes", false},
		{taskResult{Status: "COMPLETED", Result: none}, "a dill pickle of 4 bytes; --json prints its base64", false}, // dill arguments: no result_json
		{taskResult{Status: "FAILED", Result: none, ResultJSON: json.RawMessage("null")}, "none: the task FAILED", false},
		{taskResult{Status: "RUNNING", ResultJSON: json.RawMessage("null")}, "none yet: the task is RUNNING", false},
	} {
		text, ok := c.r.resultText()
		if ok != c.ok || !strings.HasPrefix(text, c.text) {
			t.Errorf("%+v: %q %v, want %q %v", c.r, text, ok, c.text, c.ok)
		}
	}
	// result_json absent and null decode apart.
	var absent, null taskResult
	if json.Unmarshal([]byte(`{"status":"COMPLETED"}`), &absent) != nil || json.Unmarshal([]byte(`{"result_json":null}`), &null) != nil ||
		len(absent.ResultJSON) != 0 || string(null.ResultJSON) != "null" {
		t.Errorf("absent %q, null %q", absent.ResultJSON, null.ResultJSON)
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestReportExitCodes(t *testing.T) {
	for _, c := range []struct {
		r    taskResult
		code int
		want string
	}{
		{taskResult{TaskID: "t", Status: "COMPLETED"}, 0, ""},
		{taskResult{TaskID: "t", Status: "QUEUED"}, exitNotFinal, "task t is QUEUED, not finished yet"},
		{taskResult{TaskID: "t", Status: "RUNNING"}, exitNotFinal, "task t is RUNNING"},
		{taskResult{TaskID: "t", Status: "FAILED"}, exitFailed, "task t FAILED\n"},
	} {
		var w bytes.Buffer
		if code := c.r.report("result", &w); code != c.code || !strings.Contains(w.String(), c.want) || (c.want == "") != (w.Len() == 0) {
			t.Errorf("%s: exit %d %q, want %d %q", c.r.Status, code, w.String(), c.code, c.want)
		}
	}
	var r taskResult
	if err := json.Unmarshal([]byte(`{"task_id":"t","status":"FAILED","error":{"kind":"USER_EXCEPTION","message":"ValueError: x",`+
		`"traceback":"Traceback (most recent call last):\n  File \"<f>\", line 2, in f\nValueError: x\n"}}`), &r); err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	want := "faas call: task t FAILED: USER_EXCEPTION: ValueError: x\nTraceback (most recent call last):\n  File \"<f>\", line 2, in f\nValueError: x\n"
	if code := r.report("call", &w); code != exitFailed || w.String() != want {
		t.Errorf("exit %d, %q", code, w.String())
	}
}

func TestPrintTasks(t *testing.T) {
	created := time.Date(2026, 12, 7, 15, 4, 5, 0, time.UTC)
	d := 0.0123456
	var w bytes.Buffer
	printTasks(&w, []taskRow{
		{TaskID: "t2", FunctionID: "f", FunctionName: "area", Status: "FAILED", ErrorKind: "USER_EXCEPTION", CreatedAt: created, Duration: &d},
		{TaskID: "t1", FunctionID: "f0", Status: "QUEUED", CreatedAt: created},
	}, time.UTC)
	want := "TASK ID  STATUS                   FUNCTION   CREATED              DURATION\n" +
		"t2       FAILED (USER_EXCEPTION)  area       2026-12-07 15:04:05  12.346ms\n" +
		"t1       QUEUED                   f0 (gone)  2026-12-07 15:04:05  -\n"
	if w.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", w.String(), want)
	}
}

// TestClientAgainstAFakeAPI: the requests the commands make (token,
// bodies, long-polls asked again until the wait is over) and the server's
// detail in their errors.
func TestClientAgainstAFakeAPI(t *testing.T) {
	var polls atomic.Int32
	var mu sync.Mutex
	var seenList []string
	seen := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seenList) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seenList = append(seenList, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/execute_function":
			io.WriteString(w, `{"task_id":"t1"}`)
		case r.URL.Path == "/result/t1":
			// RUNNING twice, as a server answers when its --max-wait is over.
			if polls.Add(1) < 3 {
				io.WriteString(w, `{"task_id":"t1","status":"RUNNING","result":null,"result_json":null}`)
				return
			}
			io.WriteString(w, `{"task_id":"t1","status":"COMPLETED","result":"gAROLg==","result_json":[1,"a"]}`)
		case r.URL.Path == "/result/gone":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"detail":"task gone not found"}`)
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream down\n")
		}
	}))
	defer srv.Close()
	t.Setenv("FAAS_URL", srv.URL+"/")
	t.Setenv("FAAS_TOKEN", "tok-from-env")

	code, stdout, stderr := captured(t, func() int {
		return cmdCall([]string{"f1", "--args", "[1, 2]", "--kwargs", `{"a": null}`, "--wait", "1m"})
	})
	if code != 0 || stdout != "[1,\"a\"]\n" || stderr != "" {
		t.Errorf("call --wait: %d %q %q", code, stdout, stderr)
	}
	requests := seen()
	if len(requests) != 4 || requests[0] != `POST /execute_function Bearer tok-from-env {"args":[1,2],"function_id":"f1","kwargs":{"a":null}}` {
		t.Fatalf("requests: %q", requests)
	}
	for _, s := range requests[1:] {
		if !strings.HasPrefix(s, "GET /result/t1?wait=") || !strings.HasSuffix(s, "ms Bearer tok-from-env ") {
			t.Errorf("long-poll %q", s)
		}
	}

	code, _, stderr = captured(t, func() int { return cmdResult([]string{"gone", "--token", "flag-token"}) })
	requests = seen()
	if code != 1 || stderr != "faas result: GET /result/gone: 404 Not Found: task gone not found\n" ||
		!strings.Contains(requests[len(requests)-1], "Bearer flag-token") {
		t.Errorf("404: %d %q %q", code, stderr, requests[len(requests)-1])
	}
	code, _, stderr = captured(t, func() int { return cmdTasks(nil) })
	if code != 1 || stderr != "faas tasks: GET /tasks?limit=20: 502 Bad Gateway: upstream down\n" {
		t.Errorf("502: %d %q", code, stderr)
	}
}

// The lifecycle flags become the API's fields: a bare --secret NAME takes
// its value from the environment.
func TestLifecycleFlagsReachTheAPI(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"function_id":"f1","task_id":"t1"}`)
	}))
	defer srv.Close()
	t.Setenv("FAAS_URL", srv.URL)
	t.Setenv("FAAS_TOKEN", "")
	t.Setenv("MY_API_KEY", "from-env")
	file := filepath.Join(t.TempDir(), "f.py")
	if err := os.WriteFile(file, []byte("def f():\n    return 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := captured(t, func() int {
		return cmdFnRegister([]string{file + ":f", "--retries", `{"max": 2, "on": ["ValueError"]}`, "--timeout", "5s",
			"--memory-mb", "128", "--env", "MODE=prod", "--env", "EQ=a=b", "--secret", "MY_API_KEY", "--secret", "DB=pw",
			"--callback-url", "https://example.com/fn"})
	}); code != 0 {
		t.Fatalf("fn register: %d %s", code, stderr)
	}
	if code, _, stderr := captured(t, func() int {
		return cmdCall([]string{"f1", "--delay", "90s", "--retries", "0", "--callback-url", "https://example.com/t"})
	}); code != 0 {
		t.Fatalf("call: %d %s", code, stderr)
	}
	if code, _, stderr := captured(t, func() int { return cmdCall([]string{"f1", "--run-at", "1800000000"}) }); code != 0 {
		t.Fatalf("call --run-at: %d %s", code, stderr)
	}
	got := func(i int, keys ...string) string {
		mu.Lock()
		defer mu.Unlock()
		sub := map[string]any{}
		for _, k := range keys {
			sub[k] = bodies[i][k]
		}
		b, _ := json.Marshal(sub)
		return string(b)
	}
	if g := got(0, "retries", "timeout", "memory_mb", "env", "secrets", "callback_url"); g != `{"callback_url":"https://example.com/fn","env":{"EQ":"a=b","MODE":"prod"},"memory_mb":128,`+
		`"retries":{"max":2,"on":["ValueError"]},"secrets":{"DB":"pw","MY_API_KEY":"from-env"},"timeout":"5s"}` {
		t.Errorf("register body: %s", g)
	}
	if g := got(1, "delay", "retries", "callback_url"); g != `{"callback_url":"https://example.com/t","delay":"90s","retries":0}` {
		t.Errorf("call body: %s", g)
	}
	if g := got(2, "run_at"); g != `{"run_at":1800000000}` {
		t.Errorf("call --run-at body: %s", g)
	}
}
