package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// eachBackend runs fn as a subtest on a fresh real redis-server and on a
// fresh miniredis.
func eachBackend(t *testing.T, opts store.Options, fn func(t *testing.T, st *store.Store, rdb *redis.Client)) {
	t.Helper()
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			rdb := b.Start(t)
			fn(t, store.New(rdb, opts), rdb)
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

const python = "/usr/bin/python3"

// runPython runs a Python program with Debian's python3 (which has dill),
// feeding it input as JSON on stdin and decoding its stdout as JSON.
func runPython(t *testing.T, program string, input, output any) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is not installed: %v", python, err)
	}
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-I", "-c", program)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, output); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
}

// pyException describes what a base64 pickle loads to in Python.
type pyException struct {
	Type    string `json:"type"`
	Module  string `json:"module"`
	Str     string `json:"str"`
	IsExc   bool   `json:"is_exception"`
	Raised  bool   `json:"raised"`
	LoadErr string `json:"load_error"`
}

// loadExceptions unpickles each base64 payload with dill.loads, the way the
// course client's deserialize does, and raises it.
func loadExceptions(t *testing.T, payloads []string) []pyException {
	t.Helper()
	const prog = `
import codecs, dill, json, sys
out = []
for p in json.load(sys.stdin):
    r = {}
    try:
        obj = dill.loads(codecs.decode(p.encode(), "base64"))
    except Exception as e:
        r["load_error"] = repr(e)
        out.append(r)
        continue
    r["type"] = type(obj).__name__
    r["module"] = type(obj).__module__
    r["str"] = str(obj)
    r["is_exception"] = isinstance(obj, BaseException)
    try:
        raise obj
    except BaseException as e:
        r["raised"] = e is obj
    out.append(r)
json.dump(out, sys.stdout)
`
	var res []pyException
	runPython(t, prog, payloads, &res)
	if len(res) != len(payloads) {
		t.Fatalf("python returned %d results for %d payloads", len(res), len(payloads))
	}
	return res
}
