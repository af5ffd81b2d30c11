package runtime

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
)

// Benchmarks of the sandbox, each beside what native python3 does with the
// same work in the same run. Run with:
//
//	go test -run '^$' -bench . -benchtime 2s ./runtime/

const fibDefs = "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\ndef noop(): return None"

// nativeSeconds times stmt in Debian's python3 (timeit, best of 5) after setup.
func nativeSeconds(b *testing.B, setup, stmt string, number int) float64 {
	b.Helper()
	return pythonSeconds(b, "/usr/bin/python3", setup, stmt, number)
}

// pythonSeconds times stmt in the given native interpreter (timeit, best
// of 5) after setup.
func pythonSeconds(b *testing.B, python, setup, stmt string, number int) float64 {
	b.Helper()
	script := "import timeit\n" + setup + "\nprint(min(timeit.repeat(" + strconv.Quote(stmt) +
		", globals=globals(), number=" + strconv.Itoa(number) + ", repeat=5)) / " + strconv.Itoa(number) + ")"
	out, err := exec.Command(python, "-c", script).Output()
	if err != nil {
		b.Fatalf("native %s: %v", python, err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// The warm path: dill.loads(args), call, dill.dumps(result), both ways over
// the pipes to the sandbox process. Native does the same pickle work in-process.
func BenchmarkWarmNoop(b *testing.B) {
	p := newPool(b, PoolConfig{Size: 1})
	pk := pickles(b, fibDefs, "noop", "((), {})")
	run(b, p, pk[0], pk[1], faastype.Warm)
	cpu := startCPU(b, p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := run(b, p, pk[0], pk[1], faastype.Warm); res.Status != faastype.Completed || !res.Warm {
			b.Fatalf("%+v", res.Error)
		}
	}
	b.StopTimer()
	cpu.report()
	native := nativeSeconds(b, "import dill\ndef noop(): return None\nargs = dill.dumps(((), {}))",
		"a, k = dill.loads(args); dill.dumps(noop(*a, **k))", 20000)
	b.ReportMetric(native*1e6, "native-us/op")
	reportSandboxMemory(b, p)
}

// fresh isolation end to end: restore a pristine interpreter, load the
// function, run it, discard the instance.
func BenchmarkFreshNoop(b *testing.B) {
	p := newPool(b, PoolConfig{Size: 1})
	pk := pickles(b, fibDefs, "noop", "((), {})")
	run(b, p, pk[0], pk[1], faastype.Fresh)
	cpu := startCPU(b, p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := run(b, p, pk[0], pk[1], faastype.Fresh); res.Status != faastype.Completed || res.Warm {
			b.Fatalf("%+v", res.Error)
		}
	}
	b.StopTimer()
	cpu.report()
	reportSandboxMemory(b, p)
}

// cpuMeter reports the processor time per op of the pool's sandbox
// processes and of this (the host) process: wall time on this shared VM
// counts other work too.
type cpuMeter struct {
	b               *testing.B
	p               *Pool
	sandbox0, host0 time.Duration
}

func startCPU(b *testing.B, p *Pool) *cpuMeter {
	return &cpuMeter{b: b, p: p, sandbox0: sandboxCPU(p), host0: hostCPU()}
}

func (m *cpuMeter) report() {
	n := float64(m.b.N)
	s := (sandboxCPU(m.p) - m.sandbox0).Seconds() * 1e6 / n
	h := (hostCPU() - m.host0).Seconds() * 1e6 / n
	m.b.ReportMetric(s, "sandbox-cpu-us/op")
	m.b.ReportMetric(h, "host-cpu-us/op")
}

func hostCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sandboxCPU is the processor time of the pool's sandbox processes so far
// (utime + stime from /proc, in clock ticks of 10 ms).
func sandboxCPU(p *Pool) time.Duration {
	var total time.Duration
	for _, s := range p.slots {
		if s.cmd == nil || s.cmd.Process == nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which ends with the last ')').
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			total += time.Duration(ut+st) * 10 * time.Millisecond
		}
	}
	return total
}

// BenchmarkFreshBundle: fresh isolation with a 1 MB bundle mounted, side by
// side with no bundle: each iteration runs one task of each variant on the
// same sandbox, so drift hits all alike. "mounted" runs the no-op with the
// bundle on sys.path; "imports" also imports a small module of it (the
// sandbox compiles it from source each fresh task: no bytecode is kept).
func BenchmarkFreshBundle(b *testing.B) {
	p := newPool(b, PoolConfig{Size: 1})
	files := map[string]string{"tiny.py": "VALUE = 1\n"}
	for i := 0; i < 64; i++ {
		var sb strings.Builder
		for j := 0; sb.Len() < 16<<10; j++ {
			fmt.Fprintf(&sb, "CONST_%d = %d\n", j, j*7919)
		}
		files[fmt.Sprintf("big/mod%02d.py", i)] = sb.String()
	}
	bnd := testBundle(b, files)
	pk := pickles(b, fibDefs, "noop", "lambda: __import__('tiny').VALUE", "((), {})")
	variants := []struct {
		name string
		fn   []byte
		b    *bundle.Bundle
	}{{"none", pk[0], nil}, {"mounted", pk[0], bnd}, {"imports", pk[1], bnd}}
	total := make([]time.Duration, len(variants))
	once := func(i int) {
		v := variants[i]
		t0 := time.Now()
		var res *faastype.Result
		if v.b == nil {
			res = run(b, p, v.fn, pk[2], faastype.Fresh)
		} else {
			res = runBundled(b, p, v.b, v.fn, pk[2], faastype.Fresh)
		}
		total[i] += time.Since(t0)
		if res.Status != faastype.Completed {
			b.Fatalf("%s: %+v", v.name, res.Error)
		}
	}
	for i := range variants {
		once(i)
	}
	clear(total)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range variants {
			once(i)
		}
	}
	b.StopTimer()
	per := func(i int) float64 { return total[i].Seconds() * 1000 / float64(b.N) }
	for i, v := range variants {
		b.ReportMetric(per(i), v.name+"-ms/task")
	}
	b.ReportMetric(per(1)-per(0), "mount-extra-ms")
	b.ReportMetric(per(2)-per(0), "import-extra-ms")
}

// Restoring an instance from the snapshot, ready to run, in-process.
func BenchmarkRestore(b *testing.B) {
	ctx, e := newEngine(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, err := e.newInstance(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		in.close(ctx)
	}
}

// timeWarm times b.N calls of fn(args) on p's warm sandbox (after one
// untimed call that loads fn); the timer is stopped when it returns.
func timeWarm(b *testing.B, p *Pool, fn, args []byte) {
	b.Helper()
	run(b, p, fn, args, faastype.Warm)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := run(b, p, fn, args, faastype.Warm); res.Status != faastype.Completed {
			b.Fatalf("%+v", res.Error)
		}
	}
	b.StopTimer()
}

// CPU-bound Python: fib(25) in a warm sandbox against native python3.
func BenchmarkFib25(b *testing.B) {
	p := newPool(b, PoolConfig{Size: 1})
	pk := pickles(b, fibDefs, "fib", "((25,), {})")
	timeWarm(b, p, pk[0], pk[1])
	// The ratio: the sandbox and native python3 timed in alternating blocks,
	// the best block of each side counting (as timeit's min does), so both
	// sides see the machine at its best; this VM's speed drifts between
	// seconds and minutes, which made a mean against a later min swing from
	// 4.5x to 8.4x.
	// With FAAS_NATIVE_PLAIN naming the interpreter runtime/pybuild/native.sh
	// builds (the guest's C source compiled natively the way the guest is:
	// clang -O2, switch dispatch, no PGO or LTO; make bench sets it), a third
	// side splits the ratio: the engine's cost against the same C natively,
	// and what Debian's PGO/LTO/computed-goto build gains over that C.
	plain := os.Getenv("FAAS_NATIVE_PLAIN")
	var sandbox, native, same float64
	for r := 0; r < 5; r++ {
		t0 := time.Now()
		for i := 0; i < 5; i++ {
			run(b, p, pk[0], pk[1], faastype.Warm)
		}
		s := time.Since(t0).Seconds() / 5
		n := nativeSeconds(b, fibDefs, "fib(25)", 5)
		if r == 0 || s < sandbox {
			sandbox = s
		}
		if r == 0 || n < native {
			native = n
		}
		if plain != "" {
			if c := pythonSeconds(b, plain, fibDefs, "fib(25)", 5); r == 0 || c < same {
				same = c
			}
		}
	}
	b.ReportMetric(sandbox*1e3, "best-ms/op")
	b.ReportMetric(native*1e3, "native-ms/op")
	b.ReportMetric(sandbox/native, "x-native")
	if plain != "" {
		b.ReportMetric(same*1e3, "same-c-native-ms/op")
		b.ReportMetric(sandbox/same, "x-same-c")
	}
}

// A mixed CPU-bound workload (runtime/pybuild/pgo_workload.py's mixed():
// fib, str methods and formatting, dict/list work, json, re, classes and
// attributes, pickle; about 0.1-0.2 s) in a warm sandbox, the profile-guided
// guest's second yardstick beside fib(25). best-ms/op is the best of 5
// blocks of 3 calls after the timed loop, as in BenchmarkFib25.
func BenchmarkPGOMixed(b *testing.B) {
	src, err := os.ReadFile("pybuild/pgo_workload.py")
	if err != nil {
		b.Fatal(err)
	}
	// recurse: mixed's helpers go by value with it, as a client's would
	// with recurse=True (or cloudpickle).
	defs := strings.Split(string(src), "\nif __name__")[0] + "\nimport dill\ndill.settings['recurse'] = True\n"
	p := newPool(b, PoolConfig{Size: 1})
	pk := pickles(b, defs, "mixed", "((1,), {})")
	timeWarm(b, p, pk[0], pk[1])
	var best float64
	for r := 0; r < 5; r++ {
		t0 := time.Now()
		for i := 0; i < 3; i++ {
			run(b, p, pk[0], pk[1], faastype.Warm)
		}
		if s := time.Since(t0).Seconds() / 3; r == 0 || s < best {
			best = s
		}
	}
	b.ReportMetric(best*1e3, "best-ms/op")
}

// What wazero's WithCloseOnContextDone (the in-process way to stop a guest)
// costs on the same fib(25), measured on instances in this process.
func BenchmarkCloseOnContextDone(b *testing.B) {
	requireImage(b)
	pk := pickles(b, fibDefs, "fib", "((25,), {})")
	for _, on := range []bool{false, true} {
		b.Run("instrumented="+strconv.FormatBool(on), func(b *testing.B) {
			ctx := context.Background()
			e, err := NewEngine(ctx, EngineConfig{closeOnContextDone: on})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close(ctx)
			in, err := e.newInstance(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer in.close(ctx)
			if _, err := in.call(ctx, pk[0], pk[1], nil, false, false, 1<<20, 256); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r, err := in.call(ctx, nil, pk[1], nil, false, false, 1<<20, 256); err != nil || r.failed {
					b.Fatalf("%v %+v", err, r)
				}
			}
		})
	}
}

// reportSandboxMemory reports the resident and proportional memory of the
// pool's sandbox processes (PSS splits the shared snapshot pages fairly).
func reportSandboxMemory(b *testing.B, p *Pool) {
	var rss, pss float64
	n := 0
	for _, s := range p.slots {
		if s.cmd == nil || s.cmd.Process == nil {
			continue
		}
		f, err := os.Open("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/smaps_rollup")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 {
				kb, _ := strconv.ParseFloat(fields[1], 64)
				switch fields[0] {
				case "Rss:":
					rss += kb / 1024
				case "Pss:":
					pss += kb / 1024
				}
			}
		}
		f.Close()
		n++
	}
	if n > 0 {
		b.ReportMetric(rss/float64(n), "rss-MiB/sandbox")
		b.ReportMetric(pss/float64(n), "pss-MiB/sandbox")
	}
}
