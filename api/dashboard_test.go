package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// getPage fetches a non-JSON page.
func (e *env) getPage(path string) (status int, header map[string]string, body string) {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	header = map[string]string{}
	for k := range resp.Header {
		header[k] = resp.Header.Get(k)
	}
	return resp.StatusCode, header, string(b)
}

// Our pages load nothing from elsewhere and run only their own inline
// script, which the CSP allows by hash.
func TestPagesAreSelfContained(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{})
	for _, c := range []struct {
		path      string
		hasScript bool
		mustHave  []string
	}{
		{"/", true, []string{"Recent tasks", "Dispatchers and workers", `fetch("dashboard/state"`}},
		{"/docs", false, []string{"POST", "/execute_batch", "DELETE", "/task/{task_id}", "/dashboard/state", "Cancel a task",
			"previous_status", "faas_store_up is 0", "payloads[3]"}},
	} {
		status, h, body := e.getPage(c.path)
		if status != 200 || h["Content-Type"] != "text/html; charset=utf-8" {
			t.Fatalf("%s: %d %v", c.path, status, h)
		}
		for _, s := range c.mustHave {
			if !strings.Contains(body, s) {
				t.Errorf("%s does not contain %q", c.path, s)
			}
		}
		if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`).FindString(body); m != "" {
			t.Errorf("%s loads something from elsewhere: %s", c.path, m)
		}
		csp := h["Content-Security-Policy"]
		if !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(body, -1)
		if c.hasScript != (len(scripts) > 0) {
			t.Errorf("%s: %d scripts", c.path, len(scripts))
		}
		for _, s := range scripts {
			sum := sha256.Sum256([]byte(s[1]))
			if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
				t.Errorf("%s: the CSP does not allow the page's script", c.path)
			}
		}
		if !c.hasScript && !strings.Contains(csp, "script-src 'none'") {
			t.Errorf("%s: CSP %q allows scripts", c.path, csp)
		}
	}
	// GET /openapi.json is the document the docs page was made from.
	status, h, body := e.getPage("/openapi.json")
	want, _ := json.MarshalIndent(buildOpenAPI(e.h.opts), "", "  ")
	if status != 200 || h["Content-Type"] != "application/json" || strings.TrimSpace(body) != string(want) {
		t.Fatalf("/openapi.json: %d %v %.200s", status, h, body)
	}
}

func TestDashboardState(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		fnID := e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x): return 2 * x"}).str("function_id")
		var ids []string
		for i := 0; i < 3; i++ {
			ids = append(ids, e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []int{i}}).str("task_id"))
		}
		completeNext(t, e.st, ids[0], store.Outcome{Status: faastype.Completed, Result: "gANLAC4=", ResultJSON: "0"})
		if _, err := e.st.Claim(ctx, "node-a", 1, time.Minute); err != nil { // ids[1] RUNNING
			t.Fatal(err)
		}
		if err := e.st.PutNode(ctx, store.Node{Name: "node-a", Role: "dispatcher", Mode: "local", Sandboxes: 2, Busy: 1}); err != nil {
			t.Fatal(err)
		}

		r := e.do("GET", "/dashboard/state", nil)
		var st dashboardState
		if err := json.Unmarshal([]byte(r.raw), &st); err != nil || r.status != 200 {
			t.Fatalf("%d %s: %v", r.status, r.raw, err)
		}
		if st.Tasks != (dashTasks{Submitted: 3, Queued: 1, Running: 1, Completed: 1}) || st.QueueDepth != 1 || st.Leases != 1 {
			t.Fatalf("counts: %+v depth %d leases %d", st.Tasks, st.QueueDepth, st.Leases)
		}
		if len(st.Recent) != 3 || st.Recent[0].TaskID != ids[2] || st.Recent[2].TaskID != ids[0] {
			t.Fatalf("recent: %+v", st.Recent)
		}
		for i, want := range []struct {
			status            string
			started, finished bool
			duration, latency bool
		}{
			{"QUEUED", false, false, false, false},
			{"RUNNING", true, false, true, false},
			{"COMPLETED", true, true, true, true},
		} {
			got := st.Recent[i]
			if string(got.Status) != want.status || got.FunctionName != "double" || got.FunctionID != fnID ||
				(got.StartedAt != nil) != want.started || (got.FinishedAt != nil) != want.finished ||
				(got.Duration != nil) != want.duration || (got.Latency != nil) != want.latency {
				t.Errorf("recent[%d] = %+v, want %+v", i, got, want)
			}
		}
		if len(st.Nodes) != 1 || st.Nodes[0].Name != "node-a" || !st.Nodes[0].Alive || st.Nodes[0].Busy != 1 {
			t.Fatalf("nodes: %+v", st.Nodes)
		}

		for _, c := range []struct {
			query  string
			status int
			recent int
		}{
			{"?limit=1", 200, 1},
			{"?limit=0", 200, 0},
			{"?limit=200", 200, 3},
			{"?limit=201", 400, 0},
			{"?limit=-1", 400, 0},
			{"?limit=many", 400, 0},
		} {
			r := e.do("GET", "/dashboard/state"+c.query, nil)
			if c.status != 200 {
				expectError(t, r, c.status, "limit must be a whole number from 0 to 200")
				continue
			}
			recent, ok := r.body["recent"].([]any)
			if r.status != 200 || !ok || len(recent) != c.recent {
				t.Errorf("%s: %d %.300s", c.query, r.status, r.raw)
			}
		}
	})
}
