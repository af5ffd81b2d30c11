package runtime

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
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

// newEngine is an engine on the built guest image, closed when the test
// ends.
func newEngine(t testing.TB) (context.Context, *Engine) {
	t.Helper()
	requireImage(t)
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return ctx, e
}

// pickles runs Debian's python3 with dill, as a client would: defs is a
// script whose top level becomes __main__, and each expression in exprs is
// dill-pickled. Returns the raw pickle bytes.
func pickles(t testing.TB, defs string, exprs ...string) [][]byte {
	t.Helper()
	b64 := pyfixture.Pickles(t, defs, exprs...)
	res := make([][]byte, len(b64))
	for i, s := range b64 {
		res[i], _ = base64.StdEncoding.DecodeString(s)
	}
	return res
}

// raisable is what the store records as res's result: its payload, or for
// a platform failure (empty payload) the built-in exception it stands for.
func raisable(res *faastype.Result) []byte {
	if res.Status == faastype.Failed && len(res.Payload) == 0 {
		return pickle.FailurePayload(res.Error)
	}
	return res.Payload
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
	var res []string
	pyfixture.Run(t, script, b64, &res)
	return res
}

var (
	sharedPoolOnce sync.Once
	sharedPool     *Pool
	sharedPoolErr  error
)

// testLimits keep the tests quick: a 2 s timeout instead of 30 s.
var testLimits = faastype.Limits{Timeout: 2 * time.Second}

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

func run(t testing.TB, p *Pool, fn, args []byte, iso faastype.Isolation) *faastype.Result {
	t.Helper()
	res, err := p.Run(context.Background(), faastype.Task{ID: t.Name(), Function: pickle.Hash(fn), Fn: fn, Args: args, Isolation: iso})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}
