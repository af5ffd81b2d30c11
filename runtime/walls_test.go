package runtime

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// The sandbox processes of the tests' pools put every wall up (this
// machine has Landlock and seccomp, and CI runs as root, so the switch to
// nobody is exercised too).
func TestWallsAreUp(t *testing.T) {
	w := pool(t).Stats().Walls
	for _, want := range []string{"no_new_privs", "landlock", "capabilities", "rlimits", "seccomp"} {
		if !strings.Contains(w, want) {
			t.Errorf("walls %q lack %s", w, want)
		}
	}
	if os.Geteuid() == 0 && !strings.Contains(w, "user 65534") {
		t.Errorf("walls %q: a root process did not become nobody", w)
	}
	if strings.Contains(w, "missing") {
		t.Errorf("walls %q", w)
	}
}

// probe has the sandbox process of p's one slot attempt a forbidden act on
// its host side, after lockdown: it answers what came of it, or is killed
// by its seccomp filter ("killed"), and the pool replaces it.
func probe(t *testing.T, p *Pool, act string) string {
	t.Helper()
	s, err := p.acquire(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(s.w, append([]byte{frameProbe}, act...)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-s.frames:
		p.release(s)
		if len(b) == 0 || b[0] != frameProbe {
			t.Fatalf("%s: not a probe answer", act)
		}
		return string(b[1:])
	case <-s.exited:
		p.replace(s)
		if bySeccomp(s.cmd) {
			return "killed"
		}
		return "exited " + s.cmd.ProcessState.String()
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no answer", act)
	}
	return ""
}

func TestForbiddenActsAfterLockdown(t *testing.T) {
	t.Setenv(envProbes, "1")
	p := newPool(t, PoolConfig{Size: 1, Limits: testLimits})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pk := pickles(t, "", "lambda: 6 * 7", "((), {})")
	for _, tc := range []struct {
		act  string
		want string // "killed" or an error's text
	}{
		{"open /etc/passwd", "permission denied"},
		{"create /tmp file", "permission denied"},
		{"socket", "killed"},
		{"connect " + ln.Addr().String(), "killed"},
		{"execve", "killed"},
		{"fork", "killed"},
		{"ptrace", "killed"},
		{"setuid 0", "killed"},
	} {
		t.Run(tc.act, func(t *testing.T) {
			got := probe(t, p, tc.act)
			if got == "ok" || !strings.Contains(got, tc.want) {
				t.Fatalf("%s: %s, want %s", tc.act, got, tc.want)
			}
			// The pool goes on: the next task runs (on a new process if
			// this one was killed).
			res := run(t, p, pk[0], pk[1], faastype.Warm)
			if res.Status != faastype.Completed {
				t.Fatalf("the task after %s: %+v", tc.act, res.Error)
			}
		})
	}
	if _, err := os.Stat("/tmp/faas-probe"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a locked-down sandbox process created /tmp/faas-probe")
	}
}

// BenchmarkWalls: sandbox processes with their walls up against ones with
// none, side by side (each iteration runs one task on each, a pool of one
// sandbox per walls setting and isolation): warm round trip and fresh
// (restore + load + run + discard) per task, and the start-up of a sandbox
// process (the mean of 5 starts each).
//
//	go test -run '^$' -bench Walls -benchtime 300x -count 3 ./runtime
func BenchmarkWalls(b *testing.B) {
	walls := []Walls{WallsOff, WallsBestEffort}
	isos := []faastype.Isolation{faastype.Warm, faastype.Fresh}
	start := map[Walls]time.Duration{}
	for i := 0; i < 5; i++ {
		for _, w := range walls {
			t0 := time.Now()
			p, err := NewPool(context.Background(), PoolConfig{Size: 1, Walls: w})
			if err != nil {
				b.Fatal(err)
			}
			start[w] += time.Since(t0)
			p.Close()
		}
	}
	type key struct {
		w   Walls
		iso faastype.Isolation
	}
	pools := map[key]*Pool{}
	for _, w := range walls {
		for _, iso := range isos {
			p, err := NewPool(context.Background(), PoolConfig{Size: 1, Walls: w})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			pools[key{w, iso}] = p
		}
	}
	pk := pickles(b, fibDefs, "noop", "((), {})")
	total := map[key]time.Duration{}
	round := func() {
		for k, p := range pools {
			t0 := time.Now()
			res := run(b, p, pk[0], pk[1], k.iso)
			total[k] += time.Since(t0)
			if res.Status != faastype.Completed {
				b.Fatalf("%+v", res.Error)
			}
		}
	}
	round()
	clear(total)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		round()
	}
	b.StopTimer()
	for _, iso := range isos {
		off := total[key{WallsOff, iso}].Seconds() * 1e6 / float64(b.N)
		on := total[key{WallsBestEffort, iso}].Seconds() * 1e6 / float64(b.N)
		b.ReportMetric(off, string(iso)+"-off-us/task")
		b.ReportMetric(on, string(iso)+"-walls-us/task")
		b.ReportMetric(on/off, string(iso)+"-walls/off")
	}
	b.ReportMetric(start[WallsOff].Seconds()*1000/5, "start-off-ms")
	b.ReportMetric(start[WallsBestEffort].Seconds()*1000/5, "start-walls-ms")
}
