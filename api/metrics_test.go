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
