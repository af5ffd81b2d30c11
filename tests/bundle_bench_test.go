package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
)

// bigBundle is about 1 MB of Python source in 64 modules, plus tiny.py,
// which the benchmark's function imports.
func bigBundle() map[string]string {
	files := map[string]string{"tiny.py": "VALUE = 1\n"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 64; i++ {
		var sb strings.Builder
		for sb.Len() < 16<<10 {
			fmt.Fprintf(&sb, "CONST_%d = %d  # %x\n", sb.Len(), r.Int64(), r.Uint64())
		}
		files[fmt.Sprintf("big/mod%02d.py", i)] = sb.String()
	}
	return files
}

// BenchmarkBundles measures, against `faas up` (2 sandboxes), what a 1 MB
// bundle adds to registering a function and to the latency of its first
// task (a new function: its sandbox loads it, and with a bundle the
// dispatcher reads the bundle from Redis and the sandbox process opens
// it), side by side: the two variants take turns, FAAS_BENCH_ROUNDS rounds
// (default 15). Run with:
//
//	go test -run '^$' -bench Bundles -benchtime 1x ./tests/
func BenchmarkBundles(b *testing.B) {
	needImage(b)
	rounds := envInt("FAAS_BENCH_ROUNDS", 15)
	port := freePort(b)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	up := startProc(b, "up", "up", "--addr", "127.0.0.1:"+strconv.Itoa(port), "-w", "2", "--log-level", "warn")
	defer up.kill()
	waitHTTP(b, url+"/healthz", time.Minute)
	var pk []string
	pyfixture.Run(b, `
import base64, dill, json
def plain():
    return 1
def imports():
    import tiny
    return tiny.VALUE
print(json.dumps([base64.b64encode(dill.dumps(f)).decode() for f in (plain, imports)] +
                 [base64.b64encode(dill.dumps(((), {}))).decode()]))
`, nil, &pk)
	files := bigBundle()
	size := 0
	for _, t := range files {
		size += len(t)
	}
	variants := []struct {
		name string
		body map[string]any
	}{
		{"none", map[string]any{"name": "plain", "payload": pk[0]}},
		{"1MB", map[string]any{"name": "imports", "payload": pk[1], "modules": files}},
	}
	reg, first, warm := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for _, v := range variants {
				t0 := time.Now()
				var rr struct {
					FunctionID string `json:"function_id"`
				}
				postJSON(b, url+"/register_function", v.body, &rr)
				reg[v.name] = append(reg[v.name], ms(time.Since(t0)))
				for k, m := range []map[string][]float64{first, warm} {
					t1 := time.Now()
					var er struct {
						TaskID string `json:"task_id"`
					}
					postJSON(b, url+"/execute_function", map[string]any{"function_id": rr.FunctionID, "payload": pk[2]}, &er)
					var res struct{ Status string }
					getJSON(b, url+"/result/"+er.TaskID+"?wait=30s", &res)
					if res.Status != "COMPLETED" {
						b.Fatalf("%s task %d: %s", v.name, k, res.Status)
					}
					m[v.name] = append(m[v.name], ms(time.Since(t1)))
				}
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "bundle of %d files, %d bytes of source; median (min-max) of %d rounds, ms:\n", len(files), size, rounds)
	for _, m := range []struct {
		what string
		xs   map[string][]float64
	}{{"register", reg}, {"first task", first}, {"second task", warm}} {
		n, w := med(m.xs["none"]), med(m.xs["1MB"])
		fmt.Fprintf(&sb, "  %-12s none %6.2f (%s)  1MB %6.2f (%s)  +%.2f ms, %.2fx\n", m.what,
			n, span(m.xs["none"]), w, span(m.xs["1MB"]), w-n, w/n)
		b.ReportMetric(w-n, strings.ReplaceAll(m.what, " ", "_")+"_extra_ms")
	}
	b.Log(sb.String())
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func med(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func span(xs []float64) string {
	return fmt.Sprintf("%.2f-%.2f", slices.Min(xs), slices.Max(xs))
}

func postJSON(b *testing.B, url string, body, out any) {
	b.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("POST %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		b.Fatal(err)
	}
}

func getJSON(b *testing.B, url string, out any) {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		b.Fatal(err)
	}
}

func waitHTTP(b *testing.B, url string, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s did not answer within %s", url, within)
}
