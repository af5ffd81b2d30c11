package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// GET /dashboard/task/{id}: GET /result's answer, the function and the
// result as text, made without unpickling; user text comes back as is (the
// page escapes it).
func TestDashboardTask(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		fnID := e.do("POST", "/register_function", map[string]any{"name": "<b>double</b>", "entrypoint": "double", "source": "def double(x): return 2 * x"}).str("function_id")
		ok := e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []int{21}}).str("task_id")
		bad := e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "payload": pyfixture.Fixture(t, "args_simple")}).str("task_id")
		queued := e.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []int{1}}).str("task_id")
		completeNext(t, e.st, ok, store.Outcome{Status: faastype.Completed, Result: "gASVCgAAAAAAAAB9lIwBYZRLKnMu", // {'a': 42}
			ResultJSON: `{"a": 42}`, Stdout: "<script>alert(1)</script>\n", Timings: &faastype.Timings{Queue: 0.01, Run: 0.5, Total: 0.6}})
		completeNext(t, e.st, bad, store.Outcome{Status: faastype.Failed, Result: pyfixture.Fixture(t, "data_str_p4"),
			Error: &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom", Traceback: "Traceback <img src=x>"}})

		var d dashTaskDetail
		r := e.do("GET", "/dashboard/task/"+ok, nil)
		if err := json.Unmarshal([]byte(r.raw), &d); err != nil || r.status != 200 {
			t.Fatalf("%d %s %v", r.status, r.raw, err)
		}
		res := e.do("GET", "/result/"+ok, nil)
		task, _ := json.Marshal(r.body["task"])
		if string(task) != strings.TrimSpace(mustJSON(t, res.body)) {
			t.Errorf("task %s\nresult %s", task, res.raw)
		}
		if d.FunctionName != "<b>double</b>" || d.FunctionID != fnID || d.Worker != "test-worker" || d.Task.Stdout != "<script>alert(1)</script>\n" ||
			d.ResultPreview == nil || *d.ResultPreview != (resultPreview{Text: "{'a': 42}", Literal: true, Bytes: 21}) {
			t.Errorf("detail: %+v %+v", d, d.ResultPreview)
		}

		r = e.do("GET", "/dashboard/task/"+bad, nil)
		d = dashTaskDetail{}
		_ = json.Unmarshal([]byte(r.raw), &d)
		if d.Task.Status != faastype.Failed || len(d.Task.Errors) != 1 || d.Task.Error.Traceback != "Traceback <img src=x>" ||
			d.ResultPreview == nil || !d.ResultPreview.Literal || !strings.HasPrefix(d.ResultPreview.Text, "'") {
			t.Errorf("failed task: %s", r.raw)
		}
		r = e.do("GET", "/dashboard/task/"+queued, nil)
		if r.status != 200 || r.body["result_preview"] != nil || r.body["task"].(map[string]any)["status"] != "QUEUED" {
			t.Errorf("queued task: %s", r.raw)
		}
		expectError(t, e.do("GET", "/dashboard/task/nope", nil), 400, "task_id")
		expectError(t, e.do("GET", "/dashboard/task/00000000-0000-4000-8000-000000000000", nil), 404, "not found")
	})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPreviewOf(t *testing.T) {
	for _, c := range []struct {
		b64, want string
		literal   bool
	}{
		{"gANLAC4=", "0", true},
		{pyfixture.Fixture(t, "fib"), "a pickled function", false},
		{"@@@", "not base64", false},
		{"aGVsbG8=", "not a valid pickle", false},
	} {
		p := previewOf(c.b64)
		if !strings.HasPrefix(p.Text, c.want) || p.Literal != c.literal {
			t.Errorf("%.20s: %+v", c.b64, p)
		}
	}
}

// The series: one point per pair of samples within the window, the last
// ending now; deltas of the counters, latency percentiles from the
// histogram's buckets; a reset of the counters drops its interval.
func TestSeriesOf(t *testing.T) {
	now := time.Now()
	lat := func(counts map[int]uint64) []uint64 {
		l := make([]uint64, len(store.HistogramBuckets)+1)
		for i, n := range counts {
			l[i] = n
		}
		return l
	}
	samples := []store.Sample{
		{At: now.Add(-20 * time.Minute), Completed: 1, Latency: lat(nil)}, // out of the window: its interval is left out
		{At: now.Add(-30 * time.Second), Completed: 5, Failed: 1, Kinds: map[faastype.ErrorKind]int64{"TIMEOUT": 1}, Latency: lat(map[int]uint64{0: 6})},
		// 100 tasks in 10 s: 90 in (5 ms, 10 ms], 10 in (1 s, 2.5 s]
		{At: now.Add(-20 * time.Second), Completed: 100, Failed: 6, Kinds: map[faastype.ErrorKind]int64{"TIMEOUT": 3, "USER_EXCEPTION": 3},
			Latency: lat(map[int]uint64{0: 6, 1: 90, 8: 10}), QueueDepth: 7},
		{At: now.Add(-10 * time.Second), Latency: lat(nil)}, // Redis was flushed
		{At: now, Completed: 2, Latency: lat(map[int]uint64{17: 1, 18: 1})},
	}
	s := seriesOf(samples, now, 10*time.Second)
	if len(s.Points) != 2 || s.SampleSeconds != 10 || s.WindowSeconds != 900 ||
		strings.Join([]string{string(s.Kinds[0]), string(s.Kinds[1])}, ",") != "TIMEOUT,USER_EXCEPTION" {
		t.Fatalf("%+v", s)
	}
	p := s.Points[0]
	if p.Completed != 95 || p.Failed != 5 || p.Throughput != 10 || p.Failures["TIMEOUT"] != 2 || p.QueueDepth != 7 ||
		*p.P50 < 0.005 || *p.P50 > 0.01 || *p.P95 < 1 || *p.P95 > 2.5 || *p.P99 < *p.P95 {
		t.Errorf("point: %+v p50 %v p95 %v p99 %v", p, *p.P50, *p.P95, *p.P99)
	}
	if last := s.Points[1]; last.Completed != 2 || *last.P99 != 3600 || !last.End.Equal(now.UTC()) {
		t.Errorf("last: %+v %v", last, *last.P99)
	}
}

// Every API instance samples; the series they serve are the same, and the
// samples land in Redis once per period.
func TestDashboardSeries(t *testing.T) {
	rdb := redistest.StartMini(t)
	a := newEnv(t, rdb, Options{DashboardSample: time.Hour})
	b := newEnv(t, rdb, Options{DashboardSample: time.Hour})
	fnID := a.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f(x): return x"}).str("function_id")
	id := a.do("POST", "/execute_function", map[string]any{"function_id": fnID, "args": []int{1}}).str("task_id")
	deadline := time.Now().Add(10 * time.Second)
	for {
		samples, _ := a.st.Samples(context.Background())
		if len(samples) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d samples", len(samples))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // the live point needs a second
	completeNext(t, a.st, id, store.Outcome{Status: faastype.Completed, Result: "gANLAC4="})
	var sa, sb dashSeries
	for _, c := range []struct {
		e *env
		s *dashSeries
	}{{a, &sa}, {b, &sb}} {
		r := c.e.do("GET", "/dashboard/series", nil)
		if err := json.Unmarshal([]byte(r.raw), c.s); err != nil || r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	if len(sa.Points) != 1 || len(sb.Points) != 1 || sa.Points[0].Completed != 1 || sb.Points[0].Completed != 1 ||
		!sa.Points[0].Start.Equal(sb.Points[0].Start) || sa.Points[0].P50 == nil || sa.SampleSeconds != 3600 {
		t.Fatalf("a %+v\nb %+v", sa, sb)
	}
	if n := len(must(a.st.Samples(context.Background()))); n != 1 {
		t.Fatalf("%d samples by two instances in one period", n)
	}
}

// The queue depth per tenant: with tokens, only the caller's tenant is
// named.
func TestDashboardTenants(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{Auth: testAuth(t)})
	for _, tok := range []string{aliceToken, bobToken, bobToken} {
		who := e.as(tok)
		fn := who.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f(): return 1"}).str("function_id")
		who.do("POST", "/execute_function", map[string]any{"function_id": fn, "args": []int{}})
	}
	var st dashboardState
	r := e.as(aliceToken).do("GET", "/dashboard/state", nil)
	if err := json.Unmarshal([]byte(r.raw), &st); err != nil {
		t.Fatal(err)
	}
	want := []dashTenantLoad{{Name: "", Tenants: 1, Queued: 2}, {Name: "alice", Yours: true, Tenants: 1, Queued: 1}}
	if len(st.Tenants) != 2 || st.Tenants[0] != want[0] || st.Tenants[1] != want[1] {
		t.Fatalf("tenants: %+v", st.Tenants)
	}
	if strings.Contains(r.raw, `"bob"`) {
		t.Fatalf("bob's name shows to alice: %s", r.raw)
	}
}

// Past maxTenantLoads tenants, the rest are summed in one entry; the
// caller's row always shows.
func TestTenantLoadsAreBounded(t *testing.T) {
	rdb := redistest.StartMini(t)
	e := newEnv(t, rdb, Options{})
	ctx := context.Background()
	for i := range maxTenantLoads + 5 {
		for range i + 1 { // tenant t<i> has i+1 queued; "" has none
			task := store.Task{ID: uuid.NewString(), FunctionID: "f", FnPayload: "gASVHAAAAAAAAACMBG1hdGiUjARzcXJ0lJOULg==",
				ParamPayload: "gASVCgAAAAAAAAApfZSGlC4=", Owner: "t" + string(rune('a'+i))}
			if err := e.st.Enqueue(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
	}
	loads, err := e.h.tenantLoads(ctx, "ta") // the least queued
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range loads {
		total += l.Queued
	}
	last := loads[len(loads)-1]
	if len(loads) != maxTenantLoads+1 || loads[0].Queued != maxTenantLoads+5 || last.Tenants != 5 || last.Name != "" ||
		total != (maxTenantLoads+5)*(maxTenantLoads+6)/2 || !loads[len(loads)-2].Yours {
		t.Fatalf("%d loads: %+v", len(loads), loads)
	}
}
