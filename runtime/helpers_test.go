package runtime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	RunChildIfRequested()
	os.Exit(m.Run())
}

// requireImage fails the test when the guest image has not been built:
// `make test` builds it first, so a missing image is a setup error.
func requireImage(t testing.TB) {
	t.Helper()
	if _, err := LoadImage(""); err != nil {
		if errors.Is(err, ErrNoImage) {
			t.Fatalf("%v (make test builds it)", err)
		}
		t.Fatal(err)
	}
}

// pickles runs Debian's python3 with dill, as a client would: defs is a
// script whose top level becomes __main__, and each expression in exprs is
// dill-pickled. Returns the raw pickle bytes.
func pickles(t testing.TB, defs string, exprs ...string) [][]byte {
	t.Helper()
	js, _ := json.Marshal(exprs)
	script := "import dill, base64, json, sys\n" + defs + "\n" +
		"print(json.dumps([base64.b64encode(dill.dumps(eval(e))).decode() for e in json.loads(sys.argv[1])]))\n"
	out, err := exec.Command("/usr/bin/python3", "-c", script, string(js)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python3 fixture failed: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("python3 fixture: %v (python3 and python3-dill are needed)", err)
	}
	var b64 []string
	if err := json.Unmarshal(out, &b64); err != nil {
		t.Fatalf("python3 fixture output: %v", err)
	}
	res := make([][]byte, len(b64))
	for i, s := range b64 {
		res[i], _ = base64.StdEncoding.DecodeString(s)
	}
	return res
}

// describe unpickles payloads with Debian's python3 + dill, as a client
// would, and returns for each: repr(value), or for an exception
// "raise <Type>: <str>" followed by its notes.
func describe(t testing.TB, payloads ...[]byte) []string {
	t.Helper()
	var b64 []string
	for _, p := range payloads {
		b64 = append(b64, base64.StdEncoding.EncodeToString(p))
	}
	js, _ := json.Marshal(b64)
	script := `import dill, base64, json, sys
out = []
for s in json.loads(sys.stdin.read()):
    v = dill.loads(base64.b64decode(s))
    if isinstance(v, BaseException):
        out.append("raise %s: %s%s" % (type(v).__name__, v, "".join("\n" + n for n in getattr(v, "__notes__", []))))
    else:
        out.append(repr(v))
print(json.dumps(out))
`
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Stdin = strings.NewReader(string(js))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python3 could not unpickle a result: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

var (
	sharedPoolOnce sync.Once
	sharedPool     *Pool
	sharedPoolErr  error
)

// testLimits keep the tests quick: a 2 s timeout instead of 30 s.
var testLimits = Limits{Timeout: 2 * time.Second}

// pool returns a pool of two sandboxes shared by the tests in this package.
func pool(t testing.TB) *Pool {
	t.Helper()
	requireImage(t)
	sharedPoolOnce.Do(func() {
		sharedPool, sharedPoolErr = NewPool(context.Background(), PoolConfig{Size: 2, Limits: testLimits})
	})
	if sharedPoolErr != nil {
		t.Fatal(sharedPoolErr)
	}
	return sharedPool
}

func newPool(t testing.TB, cfg PoolConfig) *Pool {
	t.Helper()
	requireImage(t)
	p, err := NewPool(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func run(t testing.TB, p *Pool, fn, args []byte, iso Isolation) *Result {
	t.Helper()
	res, err := p.Run(context.Background(), Task{ID: t.Name(), FnPayload: fn, ArgsPayload: args, Isolation: iso})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}
