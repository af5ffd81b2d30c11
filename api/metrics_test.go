package api

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// scrape reads GET /metrics and parses the text format.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("GET /metrics: %d %s: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("GET /metrics does not parse: %v", err)
	}
	return fams
}

// sample finds the metric of a family with the given labels (all of them)
// and returns its value (a histogram's sample count); ok is false if there
// is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsAfterRealTasks runs tasks on real sandboxes through a local
// dispatcher and reads them back from GET /metrics of an API that runs no
// sandbox itself: everything comes from Redis.
func TestMetricsAfterRealTasks(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		pool, err := runtime.NewPool(context.Background(), runtime.PoolConfig{Size: 2, Limits: faastype.Limits{Timeout: 30 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dispatch.RunLocal(ctx, dispatch.Config{Store: e.st, Name: "node-a", NodeEvery: 50 * time.Millisecond}, pool); err != nil {
				t.Error(err)
			}
		}()
		defer func() { cancel(); wg.Wait() }()

		fnID := e.do("POST", "/register_function", map[string]any{"name": "half",
			"source": "def half(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x / 2"}).str("function_id")
		r := e.do("POST", "/execute_batch", map[string]any{"function_id": fnID, "calls": []any{
			map[string]any{"args": []int{2}}, map[string]any{"args": []int{4}}, map[string]any{"args": []int{6}}, map[string]any{"args": []int{-1}}}})
		ids, _ := r.body["task_ids"].([]any)
		if len(ids) != 4 {
			t.Fatalf("execute_batch: %d %s", r.status, r.raw)
		}
		for _, id := range ids {
			res := e.do("GET", "/result/"+id.(string)+"?wait=60s", nil)
			if s := res.str("status"); s != "COMPLETED" && s != "FAILED" {
				t.Fatalf("task not final: %s", res.raw)
			}
		}
		// The node reports every 50 ms; wait until it has reported the 4 runs
		// done.
		var fams map[string]*dto.MetricFamily
		deadline := time.Now().Add(30 * time.Second)
		for {
			fams = e.scrape()
			// A report taken while the last task ran counts it, busy.
			n, _ := sample(fams, "faas_node_tasks_total", "node", "node-a")
			if busy, ok := sample(fams, "faas_sandboxes_busy", "node", "node-a"); n == 4 && ok && busy == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the node never reported its 4 tasks")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"faas_store_up", nil, 1},
			{"faas_tasks_submitted_total", nil, 4},
			{"faas_tasks", []string{"status", "QUEUED"}, 0},
			{"faas_tasks", []string{"status", "RUNNING"}, 0},
			{"faas_tasks_finished_total", []string{"status", "COMPLETED"}, 3},
			{"faas_tasks_finished_total", []string{"status", "FAILED"}, 1},
			{"faas_tasks_failed_total", []string{"kind", "USER_EXCEPTION"}, 1},
			{"faas_task_latency_seconds", []string{"status", "COMPLETED"}, 3},
			{"faas_task_latency_seconds", []string{"status", "FAILED"}, 1},
			{"faas_task_execution_seconds", []string{"status", "COMPLETED"}, 3},
			{"faas_queue_depth", nil, 0},
			{"faas_leases", nil, 0},
			{"faas_node_up", []string{"node", "node-a", "role", "dispatcher", "mode", "local"}, 1},
			{"faas_sandboxes", []string{"node", "node-a"}, 2},
			{"faas_sandboxes_ready", []string{"node", "node-a"}, 2},
			{"faas_node_tasks_total", []string{"node", "node-a"}, 4},
			{"faas_sandbox_timeouts_total", []string{"node", "node-a"}, 0},
		} {
			got, ok := sample(fams, c.name, c.labels...)
			if !ok || got != c.want {
				t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
			}
		}
		warm, _ := sample(fams, "faas_sandbox_starts_total", "node", "node-a", "type", "warm")
		cold, _ := sample(fams, "faas_sandbox_starts_total", "node", "node-a", "type", "cold")
		if warm+cold != 4 || cold < 1 {
			t.Errorf("starts: warm %v cold %v, want 4 with at least one cold", warm, cold)
		}
		if busy, ok := sample(fams, "faas_sandboxes_busy", "node", "node-a"); !ok || busy != 0 {
			t.Errorf("faas_sandboxes_busy = %v, %v", busy, ok)
		}
		// The histogram buckets are cumulative and end with every sample.
		for _, m := range fams["faas_task_latency_seconds"].GetMetric() {
			h := m.GetHistogram()
			var prev uint64
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCount() < prev {
					t.Errorf("buckets not cumulative: %v", h)
				}
				prev = b.GetCumulativeCount()
			}
			if prev > h.GetSampleCount() || h.GetSampleSum() < 0 {
				t.Errorf("histogram %v", h)
			}
		}
		// This process's own metrics are there too.
		if _, ok := fams["go_goroutines"]; !ok {
			t.Error("go_goroutines missing")
		}
	})
}

func TestMetricsWithRedisDown(t *testing.T) {
	rdb := redistest.Start(t)
	e := newEnv(t, rdb, Options{})
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	fams := e.scrape()
	if v, ok := sample(fams, "faas_store_up"); !ok || v != 0 {
		t.Fatalf("faas_store_up = %v, %v; want 0", v, ok)
	}
	if _, ok := fams["faas_tasks_submitted_total"]; ok {
		t.Fatal("task metrics reported without Redis")
	}
}

// Every faas_* metric is documented in the README, with its type.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 100)
	clusterCollector{}.Describe(ch)
	close(ch)
	var names []string
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names = append(names, m[1])
	}
	if len(names) < 15 {
		t.Fatalf("only %d metrics found", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(readme), "`"+n+"`") {
			t.Errorf("README does not document %s", n)
		}
	}
}

// The schedule metrics are read from Redis: the schedules of every tenant
// by state, and their ticks by outcome as the script that fires them
// counted them (the sums of the schedules' own counters).
func TestMetricsSchedules(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		src := "def tick():\n    return 1"
		fn := e.do("POST", "/register_function", map[string]any{"name": "tick", "source": src}).str("function_id")
		gone := e.do("POST", "/register_function", map[string]any{"name": "gone", "source": src}).str("function_id")
		var ids []string
		for _, body := range []map[string]any{
			{"function_id": fn, "every": "1h", "name": "hourly"},
			{"function_id": gone, "every": "1h", "missed": "skip"},
			{"function_id": fn, "cron": "0 0 1 1 *"},
		} {
			r := e.do("POST", "/schedules", body)
			if r.status != 200 {
				t.Fatalf("POST /schedules: %d %s", r.status, r.raw)
			}
			ids = append(ids, r.str("schedule_id"))
		}
		if r := e.do("POST", "/schedules/"+ids[2]+"/pause", nil); r.status != 200 {
			t.Fatalf("pause: %d %s", r.status, r.raw)
		}
		check := func(step string, active, paused, fired, missed, skipped float64) {
			t.Helper()
			fams := e.scrape()
			for _, c := range []struct {
				name, label, value string
				want               float64
			}{
				{"faas_schedules", "state", "active", active},
				{"faas_schedules", "state", "paused", paused},
				{"faas_schedule_ticks_total", "outcome", "fired", fired},
				{"faas_schedule_ticks_total", "outcome", "missed", missed},
				{"faas_schedule_ticks_total", "outcome", "skipped", skipped},
			} {
				if got, ok := sample(fams, c.name, c.label, c.value); !ok || got != c.want {
					t.Errorf("%s: %s{%s=%q} = %v (present %v), want %v", step, c.name, c.label, c.value, got, ok, c.want)
				}
			}
			if typ := fams["faas_schedule_ticks_total"].GetType(); typ != dto.MetricType_COUNTER {
				t.Errorf("faas_schedule_ticks_total is a %v", typ)
			}
			if typ := fams["faas_schedules"].GetType(); typ != dto.MetricType_GAUGE {
				t.Errorf("faas_schedules is a %v", typ)
			}
		}
		check("created", 2, 1, 0, 0, 0)

		// Two hours on, a dispatcher looks 30 s after the second tick: each
		// interval schedule missed its first. The run_once one makes the
		// catch-up task and the second tick's; the skip one's second tick
		// finds its function gone.
		if err := e.rdb.Del(context.Background(), gone).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.FireDue(context.Background(), time.Now().Add(2*time.Hour+30*time.Second)); err != nil {
			t.Fatal(err)
		}
		check("fired", 2, 1, 2, 2, 1)
		var created, missed, skipped float64
		list, _ := e.do("GET", "/schedules", nil).body["schedules"].([]any)
		for _, s := range list {
			m := s.(map[string]any)
			created += m["tasks_created"].(float64)
			missed += m["ticks_missed"].(float64)
			skipped += m["ticks_skipped"].(float64)
		}
		if len(list) != 3 || created != 2 || missed != 2 || skipped != 1 {
			t.Errorf("GET /schedules: %d schedules, %v created, %v missed, %v skipped", len(list), created, missed, skipped)
		}

		// Resumed, deleted: the gauges follow, the counters stay.
		e.do("POST", "/schedules/"+ids[2]+"/resume", nil)
		e.do("DELETE", "/schedules/"+ids[0], nil)
		check("resumed and deleted", 2, 0, 2, 2, 1)
	})
}
