package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHumanBytesAndPayloadTasks(t *testing.T) {
	for _, c := range []struct {
		n     int64
		text  string
		tasks int
	}{{1000, "1KB", 3000}, {100e3, "100KB", 1000}, {1e6, "1MB", 200}, {10e6, "10MB", 30}, {1536, "1536B", 3000}} {
		if got := humanBytes(c.n); got != c.text {
			t.Errorf("humanBytes(%d) = %q, want %q", c.n, got, c.text)
		}
		if got := payloadTasks(c.n); got != c.tasks {
			t.Errorf("payloadTasks(%d) = %d, want %d", c.n, got, c.tasks)
		}
	}
}

// The report has a table and plots for every part measured, and the
// queue's drain read by tenths of the queue.
func TestWriteScaleReport(t *testing.T) {
	dir := t.TempDir()
	r := &ScaleResults{Date: "d", Machine: "m", Command: "faas bench scale",
		Queue: &QueueDepth{Tasks: 1000, EnqueueSeconds: 0.5, EnqueueRate: 2000, BytesPerQueued: 900, BytesPerFinished: 400,
			DrainSeconds: 1, Windows: []Drain{{Remaining: 950, TasksPerSec: 100, ScriptUSCall: 50}, {Remaining: 10, TasksPerSec: 120, ScriptUSCall: 52}}},
		Tenants:  []TenantPoint{{Tenants: 1, Tasks: 100, TasksPerSec: 900, ScriptUSCall: 70, FirstStartRank: 1}},
		Workers:  []Row{{Mode: "push", Sandboxes: 2, Report: &Report{Throughput: 800}}, {Mode: "pull", Sandboxes: 2, Report: &Report{Throughput: 700}}},
		Payloads: []PayloadPoint{{Bytes: 1000, MBps: 3, Row: Row{Report: &Report{Throughput: 1500}}}},
	}
	if err := WriteScaleReport(dir, r); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "scale.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| enqueue rate | 2000 tasks/s", "| 100% | 100 | 50.0 |", "| 10% | 120 | 52.0 |",
		"| 1 | 100 | 900 | 70.0 |", "| push | 1 | 2 | 800 |", "| 1KB | 1500.0 | 3 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("scale.md lacks %q:\n%s", want, md)
		}
	}
	for _, p := range []string{"scale-queue-throughput.svg", "scale-tenants.svg", "scale-workers.svg", "scale-payloads.svg"} {
		if b, err := os.ReadFile(filepath.Join(dir, "plots", p)); err != nil || !strings.Contains(string(b), "<polyline") {
			t.Errorf("plot %s: %v", p, err)
		}
	}
}
