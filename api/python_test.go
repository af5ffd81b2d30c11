package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/runtime"
)

// Fixtures are made at test time by Debian's python3 with dill 0.3.6, the
// same versions the sandbox runs.

const python = "/usr/bin/python3"

func TestMain(m *testing.M) {
	// The metrics test runs real sandboxes: this binary is their process.
	runtime.RunChildIfRequested()
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureB64  map[string]string
	fixtureErr  error
)

func needPython(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is not installed (%v); the pickle fixtures need Debian's python3 with python3-dill", python, err)
	}
}

// fixture returns the base64 (no newlines) of the named pickle from
// testdata/fixtures.py.
func fixture(t testing.TB, name string) string {
	t.Helper()
	needPython(t)
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "wasmfaas-api-fixtures-")
		if fixtureErr != nil {
			return
		}
		var out []byte
		out, fixtureErr = pythonOutput(nil, "testdata/fixtures.py", fixtureDir)
		if fixtureErr == nil {
			fixtureErr = json.Unmarshal(out, &fixtureB64)
		}
	})
	if fixtureErr != nil {
		t.Fatalf("make fixtures: %v", fixtureErr)
	}
	b64, ok := fixtureB64[name]
	if !ok {
		t.Fatalf("no fixture %q", name)
	}
	return b64
}

func fixtureBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allFixtures(t testing.TB) map[string]string {
	fixture(t, "args_empty")
	return fixtureB64
}

type pyError struct {
	err    error
	stderr string
}

func (e *pyError) Error() string { return e.err.Error() + "\n" + e.stderr }

// pythonOutput runs python3 -I with args, stdin as input, and returns stdout.
func pythonOutput(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-I"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &pyError{err, stderr.String()}
	}
	return out, nil
}

// runPython runs a program with input as JSON on stdin and decodes its
// stdout as JSON into output.
func runPython(t testing.TB, program string, input, output any) {
	t.Helper()
	needPython(t)
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pythonOutput(in, "-c", program)
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	if err := json.Unmarshal(out, output); err != nil {
		t.Fatalf("python output %.200q: %v", out, err)
	}
}
