package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// A function's own settings travel with its tasks: os.environ holds exactly
// its variables (in a warm interpreter too, and never another function's),
// a memory cap below the pool's stops it there, and a shorter timeout
// stops it sooner.
func TestPerFunctionSettings(t *testing.T) {
	p := pool(t)
	pk := pickles(t, "import os\ndef env(): return sorted(os.environ.items())\n"+
		"def hog(mib): return len(bytearray(mib << 20))\n"+
		"def spin():\n    while True: pass",
		"env", "hog", "spin", "((), {})", "((100,), {})", "((10,), {})")
	runTask := func(fn, args []byte, key string, edit func(*faastype.Task)) *faastype.Result {
		t.Helper()
		task := faastype.Task{ID: t.Name(), Function: key, Fn: fn, Args: args, Isolation: faastype.Warm}
		if edit != nil {
			edit(&task)
		}
		res, err := p.Run(context.Background(), task)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	withEnv := func(env ...string) func(*faastype.Task) { return func(tk *faastype.Task) { tk.Env = env } }
	cases := []struct {
		key  string
		env  []string
		want string
	}{
		{"fn-a", []string{"API_URL=https://example.org/v1", "MODE=a=b", "EMPTY="}, "[('API_URL', 'https://example.org/v1'), ('EMPTY', ''), ('MODE', 'a=b')]"},
		{"fn-b", []string{"OTHER=1"}, "[('OTHER', '1')]"},
		{"fn-c", nil, "[]"},
		{"fn-a", []string{"API_URL=https://example.org/v1", "MODE=a=b", "EMPTY="}, "[('API_URL', 'https://example.org/v1'), ('EMPTY', ''), ('MODE', 'a=b')]"},
	}
	for i, c := range cases {
		for round := range 2 { // the second run is warm
			res := runTask(pk[0], pk[3], c.key, withEnv(c.env...))
			if res.Status != faastype.Completed {
				t.Fatalf("case %d: %+v", i, res.Error)
			}
			if got := describe(t, res.Payload)[0]; got != c.want {
				t.Fatalf("case %d round %d: environment %s, want %s", i, round, got, c.want)
			}
		}
	}

	// 100 MiB fits the pool's 256 MiB, not a 64 MiB cap; 10 MiB fits both.
	if res := runTask(pk[1], pk[4], "hog-free", nil); res.Status != faastype.Completed {
		t.Fatalf("100 MiB under the pool's cap: %+v", res.Error)
	}
	capped := func(tk *faastype.Task) { tk.MemoryBytes = 64 << 20 }
	res := runTask(pk[1], pk[4], "hog-capped", capped)
	if res.Error == nil || res.Error.Kind != faastype.KindMemoryLimit || !strings.Contains(res.Error.Message, "64 MiB") {
		t.Fatalf("100 MiB under a 64 MiB cap: %s %+v", res.Status, res.Error)
	}
	if res := runTask(pk[1], pk[5], "hog-capped", capped); res.Status != faastype.Completed {
		t.Fatalf("10 MiB under a 64 MiB cap: %+v", res.Error)
	}
	// The cap is the task's: the next function, uncapped, has the pool's.
	if res := runTask(pk[1], pk[4], "hog-free", nil); res.Status != faastype.Completed {
		t.Fatalf("100 MiB after a capped task: %+v", res.Error)
	}

	start := time.Now()
	res = runTask(pk[2], pk[3], "spin", func(tk *faastype.Task) { tk.Timeout = 500 * time.Millisecond })
	if res.Error == nil || res.Error.Kind != faastype.KindTimeout || time.Since(start) > 3*time.Second {
		t.Fatalf("a 500ms timeout: %s %+v after %s", res.Status, res.Error, time.Since(start))
	}
}
