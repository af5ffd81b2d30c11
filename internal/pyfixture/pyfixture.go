// Package pyfixture runs Debian's python3 for tests: the pickle fixtures of
// fixtures.py (made at test time by python3 with dill 0.3.6, the versions
// the sandbox runs) and small programs that talk JSON. The api and pickle
// tests share it. A missing python3 or dill fails the test: `make test`
// installs them, and a test that skips would hide a missing prerequisite.
package pyfixture

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Python is the interpreter the fixtures need.
const Python = "/usr/bin/python3"

//go:embed fixtures.py
var fixturesPy []byte

var (
	once sync.Once
	b64  map[string]string
	err  error
)

// Need fails t unless Debian's python3 is installed.
func Need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Python); err != nil {
		t.Fatalf("%s is not installed (%v): the tests need Debian's python3 with python3-dill (make test installs them)", Python, err)
	}
}

// Fixture returns the base64 (no newlines) of the named pickle of
// fixtures.py.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	all := All(t)
	v, ok := all[name]
	if !ok {
		t.Fatalf("no fixture %q", name)
	}
	return v
}

// Bytes is Fixture decoded.
func Bytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(Fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// All returns every fixture by name.
func All(t testing.TB) map[string]string {
	t.Helper()
	Need(t)
	once.Do(func() {
		var dir string
		dir, err = os.MkdirTemp("", "wasmfaas-fixtures-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		script := filepath.Join(dir, "fixtures.py")
		if err = os.WriteFile(script, fixturesPy, 0o644); err != nil {
			return
		}
		scratch := filepath.Join(dir, "scratch")
		if err = os.Mkdir(scratch, 0o755); err != nil {
			return
		}
		var out []byte
		if out, err = Output(nil, script, scratch); err == nil {
			err = json.Unmarshal(out, &b64)
		}
	})
	if err != nil {
		t.Fatalf("make fixtures: %v", err)
	}
	return b64
}

// Error is a failed python3 run, with what it wrote to stderr.
type Error struct {
	Err    error
	Stderr string
}

func (e *Error) Error() string { return e.Err.Error() + "\n" + e.Stderr }

// Output runs python3 -I with args, stdin as input, and returns stdout.
func Output(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python, append([]string{"-I"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &Error{err, stderr.String()}
	}
	return out, nil
}

// Run runs a program with input as JSON on stdin and decodes its stdout
// as JSON into output.
func Run(t testing.TB, program string, input, output any) {
	t.Helper()
	Need(t)
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Output(in, "-c", program)
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	if err := json.Unmarshal(out, output); err != nil {
		t.Fatalf("python output %.200q: %v", out, err)
	}
}

// Exception describes what a base64 pickle loads to in Python.
type Exception struct {
	Type    string `json:"type"`
	Module  string `json:"module"`
	Str     string `json:"str"`
	IsExc   bool   `json:"is_exception"`
	Raised  bool   `json:"raised"`
	LoadErr string `json:"load_error"`
}

// LoadExceptions unpickles each base64 payload with dill.loads, the way the
// course client's deserialize does, and raises it.
func LoadExceptions(t testing.TB, payloads []string) []Exception {
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
	var res []Exception
	Run(t, prog, payloads, &res)
	if len(res) != len(payloads) {
		t.Fatalf("python returned %d results for %d payloads", len(res), len(payloads))
	}
	return res
}

// Pickles runs defs as a script's top level (its functions are __main__'s,
// as in a client's script) and returns the base64 dill pickle of each
// expression of exprs, made the way a course client makes them.
func Pickles(t testing.TB, defs string, exprs ...string) []string {
	t.Helper()
	program := "import base64, dill, json, sys\n" + defs + "\n" +
		"print(json.dumps([base64.b64encode(dill.dumps(eval(e))).decode() for e in json.load(sys.stdin)]))\n"
	var out []string
	Run(t, program, exprs, &out)
	if len(out) != len(exprs) {
		t.Fatalf("pyfixture: %d pickles for %d expressions", len(out), len(exprs))
	}
	return out
}
